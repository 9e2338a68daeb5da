"""
The worker's progress record: real progress, written by the only one who knows it.

`exports/<job_id>/progress.json` is written first thing, then at most about once
a second (or at once on a stage change), and at least every HEARTBEAT_SECONDS
even when nothing moved, so it doubles as the heartbeat. Every record is also
kept in `exports/<job_id>/progress.log` as JSON lines: appended as it goes on
the filesystem, flushed with the heartbeat and at the end on S3.

Every record carries `remaining_seconds`: the worker's estimate of the seconds
left as of the record's `worker_time` (see eta.py), null until it is stable, null
after a failure, 0 in the final record. Pages count it down from `worker_time`.

Within one attempt the percent never goes backwards, and it reaches 100 only
through `finish()`, which the worker calls after the output and result are stored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from .eta import RemainingTime
from .records import PROGRESS, PROGRESS_LOG, ProgressRecord, job_key
from .store import ObjectStore

logger = logging.getLogger(__name__)

THROTTLE_SECONDS = 1.0
HEARTBEAT_SECONDS = 30.0


class ProgressReporter:
    def __init__(
        self,
        *,
        store: ObjectStore,
        job_id: str,
        call_id: str,
        attempt: int = 1,
        throttle_seconds: float = THROTTLE_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        on_record: Callable[[ProgressRecord], None] | None = None,
    ):
        self.store = store
        self.job_id = job_id
        self.call_id = call_id
        self.attempt = attempt
        self.throttle_seconds = throttle_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.clock = clock
        self.on_record = on_record  # told every record written (events.py sends it on); must not block
        self._remaining = RemainingTime()
        self._lock = threading.Lock()
        self._record: dict = {}
        self._chunks: list[dict] = []  # sticky: every record carries the chunks' latest states
        self._last_written = 0.0
        self._written: dict = {}  # the record as last written: an update moved if it shows something else
        self._unflushed_log: list[bytes] = []
        self._stopped = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def start(self, *, total_seconds: float = 0.0, message: str = "Starting") -> None:
        """Write the first record (with the call id, so a lost spawn can be adopted) and start the heartbeat."""
        with self._lock:
            self._record = self._new_record(0, "starting", message, 0.0, total_seconds)
            self._write_locked()
        self._heartbeat.start()

    def update(
        self,
        *,
        percent: float,
        stage: str,
        message: str = "",
        processed_seconds: float | None = None,
        total_seconds: float | None = None,
        processed_work: float | None = None,
        total_work: float | None = None,
    ) -> None:
        """Each of the seconds and work left out stays as it was."""
        with self._lock:
            previous = self._record
            shown = max(int(previous.get("percent", 0)), min(99, int(percent)))
            record = self._new_record(
                shown,
                stage,
                message or previous.get("message", ""),
                previous.get("processed_seconds", 0.0) if processed_seconds is None else processed_seconds,
                previous.get("total_seconds", 0.0) if total_seconds is None else total_seconds,
                previous.get("processed_work") if processed_work is None else processed_work,
                previous.get("total_work") if total_work is None else total_work,
            )
            stage_changed = stage != previous.get("stage")
            written = self._written
            moved = shown != written.get("percent") or record["message"] != written.get("message")
            self._record = record
            if stage_changed or (moved and self.clock() - self._last_written >= self.throttle_seconds):
                self._write_locked()

    def set_chunks(self, chunks: list[dict]) -> None:
        """
        A chunked export's chunks as they stand (records.ChunkState), written at once: the record names each
        chunk call from its spawn, for a re-run of this call to adopt and for an admin to look at.
        """
        with self._lock:
            self._chunks = chunks
            self._record = {**self._record, "chunks": chunks}
            self._write_locked()

    def finish(self, *, message: str = "Done") -> None:
        """Write 100 %; call only once the output and result.json are stored."""
        with self._lock:
            total = self._record.get("total_seconds", 0.0)
            self._record = self._new_record(100, "done", message, total, total)
            self._write_locked()
        self.stop()

    def fail(self, message: str) -> None:
        """Record the failure in the progress record (the percent stays where it was)."""
        with self._lock:
            previous = self._record
            self._record = self._new_record(
                previous.get("percent", 0),
                "failed",
                message,
                previous.get("processed_seconds", 0.0),
                previous.get("total_seconds", 0.0),
            )
            self._write_locked()
        self.stop()

    def stop(self) -> None:
        self._stopped.set()
        if self._heartbeat.is_alive() and threading.current_thread() is not self._heartbeat:
            self._heartbeat.join(timeout=5)
        with self._lock:
            self._flush_log_locked()

    def _new_record(
        self, percent, stage, message, processed_seconds, total_seconds, processed_work=None, total_work=None
    ) -> dict:
        """The record's fields as they stand; _write_locked adds the estimate and the time (ProgressRecord)."""
        record = {
            "job_id": self.job_id,
            "call_id": self.call_id,
            "attempt": self.attempt,
            "percent": int(percent),
            "stage": stage,
            "message": message[:500],
            "processed_seconds": round(float(processed_seconds), 3),
            "total_seconds": round(float(total_seconds), 3),
        }
        if processed_work is not None and total_work is not None:
            record |= {"processed_work": round(float(processed_work), 3), "total_work": round(float(total_work), 3)}
        if self._chunks:
            record["chunks"] = self._chunks
        return record

    def _write_locked(self) -> None:
        """Write the current record; a store hiccup costs one progress update, never the export."""
        now = self.clock()
        remaining = self._remaining.observe_record(now, self._record)
        record = ProgressRecord(
            **self._record,
            remaining_seconds=None if remaining is None else round(remaining, 1),
            worker_time=datetime.now(UTC),
        )
        line = record.to_json()
        self._last_written = now
        self._written = self._record
        # The log keeps how the export went; the chunks' states are for a look at the latest record only.
        self._unflushed_log.append(record.model_dump_json(exclude={"chunks"}).encode() + b"\n")
        try:
            self.store.write_bytes(job_key(self.job_id, PROGRESS), line)
        except Exception:
            logger.warning("Could not write the progress record of %s", self.job_id, exc_info=True)
            return
        if self.on_record is not None:
            self.on_record(record)
        if self.store.appends_in_place:
            self._flush_log_locked()

    def _flush_log_locked(self) -> None:
        if not self._unflushed_log:
            return
        try:
            self.store.append_bytes(job_key(self.job_id, PROGRESS_LOG), b"".join(self._unflushed_log))
        except Exception:
            logger.warning("Could not append to the progress log of %s", self.job_id, exc_info=True)
            return
        self._unflushed_log.clear()

    def _beat(self) -> None:
        while not self._stopped.wait(min(1.0, self.heartbeat_seconds)):
            with self._lock:
                if self.clock() - self._last_written >= self.heartbeat_seconds:
                    self._write_locked()
                    self._flush_log_locked()

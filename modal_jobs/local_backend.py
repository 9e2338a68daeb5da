"""
The local executor: Modal's promises, kept with processes and files on this machine.

Every call gets a folder under `root/calls/<call_id>/`. A spawn queues the call;
whoever finds a free slot (spawn, poll, or a finishing worker) starts the next
queued one, so the queue drains with no web server running. A started call is a
detached supervisor (its own session, no pipes back to the spawner, so it
outlives the web server as a Modal container outlives our backend) that runs the
worker in its own process group and records how it ended.

Exports and the chunks a chunked export spawns (modal_jobs/chunks.py) have slots of their own
(`queued-chunks/`, `running-chunks/`), max_workers each: an export waiting for its chunks holds its
slot, and chunks queued behind it for the same slots would wait for ever.

Liveness is a file lock, not a pid: the spawner takes `lock` before launching
and hands the open file to the supervisor and the worker, so the lock is held
exactly as long as any of them lives. Every state file is written atomically.

    call.json    what to run (written at spawn)        queued/<n>-<id>   waiting for a slot
    started.json supervisor and worker pids            running/<id>      has (or had) a slot
    return.json  the worker's returned dict            cancel.json       a cancel was requested
    exit.json    how the worker ended (supervisor)     worker.log        the worker's output
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .executors import CallState, CallStatus, ExecutorUnavailable, SpawnRefused
from .kinds import CHUNK_KIND, KINDS
from .store import open_regular_file

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CALL_ID_PATTERN = re.compile(r"^local-[0-9a-f]{32}$")
# How long after SIGTERM a worker is SIGKILLed (cancel, time limit).
KILL_GRACE_SECONDS = 5.0
# State files are a few hundred bytes; return.json holds the worker's result.
MAX_STATE_FILE_BYTES = 1024 * 1024
# How much of the end of worker.log logs() returns.
LOG_TAIL_BYTES = 16 * 1024
# Each pool's folders of markers: (waiting for a slot, has a slot).
POOLS = {"exports": ("queued", "running"), "chunks": ("queued-chunks", "running-chunks")}


def pool_of(kind: str) -> str:
    return "chunks" if kind == CHUNK_KIND else "exports"


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The state file's object, or None when it is missing or is not one (truncated, a directory, not JSON)."""
    try:
        with open_regular_file(path) as handle:
            data = json.loads(handle.read(MAX_STATE_FILE_BYTES + 1))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        logger.warning("Ignoring the unreadable state file %s: %s", path, error)
        return None
    if not isinstance(data, dict):
        logger.warning("Ignoring the state file %s: it holds no JSON object", path)
        return None
    return data


def lock_is_held(path: Path) -> bool:
    """Return whether some process holds the call's lock (i.e. its supervisor or worker is alive)."""
    try:
        descriptor = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)  # closing releases the lock if we took it
    return False


def signal_group(process_group: int, signal_number: int) -> bool:
    try:
        os.killpg(process_group, signal_number)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class LocalBackend:
    name = "local"

    def __init__(
        self,
        *,
        root: str | Path,
        store_config: dict[str, Any],
        max_workers: int = 2,
        cores_per_worker: int = 0,
        cores: list[int] | None = None,
        time_limit_seconds: float = 4 * 3600,
        result_ttl_seconds: float = 7 * 24 * 3600,
        python: str = sys.executable,
    ):
        self.root = Path(root)
        self.store_config = store_config
        self.max_workers = max_workers
        # Each worker (and its ffmpeg) on cores of its own, as each Modal container has its CPUs: slot n of a
        # pool gets cores n*k to n*k+k-1 (modulo the machine's). 0: no pinning, the kernel shares them all.
        self.cores_per_worker = cores_per_worker
        # The machine's cores as the spawner found them: a pinned worker spawning chunk calls sees only its own.
        self.cores = cores or sorted(os.sched_getaffinity(0))
        self.time_limit_seconds = time_limit_seconds
        self.result_ttl_seconds = result_ttl_seconds
        self.python = python
        for folder in ("calls", *(name for folders in POOLS.values() for name in folders)):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_call(cls, call: dict[str, Any]) -> LocalBackend:
        """Rebuild the backend a call was spawned with (a finishing supervisor drains the queue with it)."""
        return cls(**call["executor"])

    def call_dir(self, call_id: str) -> Path:
        return self.root / "calls" / call_id

    # The protocol

    def is_call_id(self, call_id: str) -> bool:
        return bool(CALL_ID_PATTERN.match(call_id))

    def spawn(self, kind: str, payload: dict[str, Any]) -> str:
        if kind not in (*KINDS, CHUNK_KIND):
            raise SpawnRefused(f"Unknown export kind {kind!r}.")
        call_id = f"local-{uuid.uuid4().hex}"
        call_dir = self.call_dir(call_id)
        call_dir.mkdir()
        (call_dir / "lock").touch()
        write_json_atomically(
            call_dir / "call.json",
            {
                "call_id": call_id,
                "kind": kind,
                "payload": payload,
                "created_at": time.time(),
                "executor": {
                    "root": str(self.root),
                    "store_config": self.store_config,
                    "max_workers": self.max_workers,
                    "cores_per_worker": self.cores_per_worker,
                    "cores": self.cores,
                    "time_limit_seconds": self.time_limit_seconds,
                    "result_ttl_seconds": self.result_ttl_seconds,
                    "python": self.python,
                },
            },
        )
        if kind == CHUNK_KIND and self.cores_per_worker:
            # The export spawning it waits for its chunks and renders only the audio meanwhile: it leaves its
            # core to them and takes whichever is free (on Modal it has a container of its own beside theirs).
            # Pinned, its audio pass halved the speed of the one chunk on its core and the chunks' balance.
            os.sched_setaffinity(0, self.cores)
        queued, _ = POOLS[pool_of(kind)]
        (self.root / queued / f"{time.time_ns():020d}-{call_id}").touch()
        self.start_queued_calls()
        return call_id

    def poll(self, call_id: str) -> CallState:
        if not CALL_ID_PATTERN.match(call_id) or not (self.call_dir(call_id) / "call.json").exists():
            return CallState(CallStatus.UNKNOWN, message="This executor has no such call.")
        self.start_queued_calls()
        return self._read_state(call_id)

    def cancel(self, call_id: str) -> None:
        if not CALL_ID_PATTERN.match(call_id):
            return
        call_dir = self.call_dir(call_id)
        if not call_dir.exists():
            return
        with self._queue_lock():
            if not (call_dir / "cancel.json").exists():
                write_json_atomically(call_dir / "cancel.json", {"requested_at": time.time()})
            for marker in self._queued_markers(call_id):
                marker.unlink(missing_ok=True)  # never started: nothing to stop
                write_json_atomically(call_dir / "exit.json", {"how": "cancelled", "finished_at": time.time()})
                return
        started = read_json(call_dir / "started.json")
        if started and lock_is_held(call_dir / "lock"):
            # The supervisor also sees cancel.json and escalates to SIGKILL; this makes it prompt,
            # and covers a worker whose supervisor was killed.
            signal_group(started["worker_pgid"], signal.SIGTERM)

    def logs(self, call_id: str) -> str:
        if not CALL_ID_PATTERN.match(call_id):
            raise ExecutorUnavailable("This executor has no such call.")
        try:
            # Not following links: the log is the worker's own file, never a link to elsewhere on this machine.
            with open_regular_file(self.call_dir(call_id) / "worker.log", follow_links=False) as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(0, size - LOG_TAIL_BYTES))
                tail = log.read(LOG_TAIL_BYTES)
        except FileNotFoundError:
            raise ExecutorUnavailable("The worker has written no log (it has not started).") from None
        except OSError as error:
            raise ExecutorUnavailable(f"The worker's log cannot be read: {error.strerror or error}") from error
        if size > LOG_TAIL_BYTES:
            tail = tail.partition(b"\n")[2]  # start at a whole line
        return tail.decode(errors="replace")

    # The queue

    def start_queued_calls(self) -> list[str]:
        """Give free slots to the oldest queued calls of each pool; return the ids started."""
        started = []
        with self._queue_lock():
            for queued, running in POOLS.values():
                busy, taken = 0, set()  # the pool's running calls, and the slots they hold
                for marker in (self.root / running).iterdir():
                    if lock_is_held(self.call_dir(marker.name) / "lock"):
                        busy += 1
                        taken.add(marker.read_text())
                    else:
                        marker.unlink(missing_ok=True)
                free = [slot for slot in range(self.max_workers) if str(slot) not in taken][: self.max_workers - busy]
                for marker, slot in zip(sorted((self.root / queued).iterdir()), free, strict=False):
                    call_id = marker.name.split("-", 1)[1]
                    os.replace(marker, self.root / running / call_id)
                    (self.root / running / call_id).write_text(str(slot))
                    self._launch(call_id, slot)
                    started.append(call_id)
        return started

    def _queued_markers(self, call_id: str) -> list[Path]:
        return [marker for queued, _ in POOLS.values() for marker in (self.root / queued).glob(f"*-{call_id}")]

    @contextmanager
    def _queue_lock(self):
        with open(self.root / "queue.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def cores_of(self, slot: int) -> set[int]:
        """The cores a worker in `slot` runs on: all of them unless cores_per_worker pins it."""
        cores = self.cores
        if not self.cores_per_worker:
            return set(cores)
        return {cores[(slot * self.cores_per_worker + n) % len(cores)] for n in range(self.cores_per_worker)}

    def _launch(self, call_id: str, slot: int) -> None:
        """Start the call's supervisor, holding its lock from now until the supervisor and worker end."""
        call_dir = self.call_dir(call_id)
        descriptor = os.open(call_dir / "lock", os.O_RDWR)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            subprocess.run(
                [self.python, "-m", "modal_jobs.local_worker", "supervise", str(call_dir), str(descriptor), str(slot)],
                pass_fds=(descriptor,),
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=PROJECT_ROOT,
                check=True,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError) as error:
            write_json_atomically(
                call_dir / "exit.json",
                {"how": "launch_failed", "message": f"Could not start the worker: {error}", "finished_at": time.time()},
            )
        finally:
            os.close(descriptor)

    # Reading a call's state

    def _read_state(self, call_id: str) -> CallState:
        call_dir = self.call_dir(call_id)
        returned = read_json(call_dir / "return.json")
        ended = read_json(call_dir / "exit.json")
        finished_at = (ended or {}).get("finished_at")
        if isinstance(finished_at, int | float) and time.time() - finished_at > self.result_ttl_seconds:
            return CallState(CallStatus.EXPIRED, message="The call's outcome is no longer kept.")
        if returned is not None:
            return CallState.from_result(returned)  # the output won any race with a cancel
        cancel_requested = (call_dir / "cancel.json").exists()
        if ended is None:
            if lock_is_held(call_dir / "lock"):
                self._enforce_time_limit(call_dir)
                return CallState.running()
            for queued, _ in POOLS.values():
                waiting = sorted(marker.name for marker in (self.root / queued).iterdir())
                for ahead, name in enumerate(waiting):
                    if name.endswith(f"-{call_id}"):  # queued calls read as running, as on Modal, with their place
                        return CallState(CallStatus.RUNNING, queued_ahead=ahead)
            if cancel_requested:
                return CallState(CallStatus.TERMINATED)
            return CallState.failed("The worker disappeared without a result (its supervisor was killed).")
        how = ended.get("how")
        if how == "timed_out":
            limit = ended.get("limit")
            limit_text = f"{limit:g} s" if isinstance(limit, int | float) else "its"
            return CallState(CallStatus.TIMED_OUT, message=f"Stopped after the {limit_text} time limit.")
        if cancel_requested or how == "cancelled":
            return CallState(CallStatus.TERMINATED)
        if how == "launch_failed":
            return CallState.failed(str(ended.get("message")))
        if how == "signal":
            return CallState.failed(f"The worker was killed by {ended.get('signal')} without a result.")
        return CallState.failed(f"The worker exited with code {ended.get('code')} without a result.")

    def _enforce_time_limit(self, call_dir: Path) -> None:
        """Stop a call past its limit whose supervisor is gone (the supervisor normally does this)."""
        started = read_json(call_dir / "started.json")
        if not started or time.time() - started["started_at"] <= self.time_limit_seconds + 2 * KILL_GRACE_SECONDS:
            return
        if not (call_dir / "exit.json").exists():
            write_json_atomically(
                call_dir / "exit.json",
                {"how": "timed_out", "limit": self.time_limit_seconds, "finished_at": time.time()},
            )
        signal_group(started["worker_pgid"], signal.SIGKILL)

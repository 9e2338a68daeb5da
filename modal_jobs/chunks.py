"""
A long export rendered in chunks (issue 20), each kept in the store the moment it is complete, so a re-run of
the export (a preempted or crashed call, restarted under the same job) renders only the chunks still missing.

Imports no Django. A chunk is a run of output frames (pipeline.Chunk); the audio is rendered once for the
whole timeline and the chunks are joined by stream copy (pipeline.join), so the result is the whole render's.
Where the executor can run calls of the export's own (the local one: `calls`), each missing chunk is a call
and they render in parallel; otherwise the export's call renders them one after another.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from .executors import CallState, CallStatus, ExecutorUnavailable
from .kinds import CHUNK_KIND
from .pipeline import (
    AUDIO,
    Chunk,
    Encoder,
    RenderError,
    RenderPlan,
    build_plan,
    choose_encoder,
    join,
    render,
)
from .records import job_key
from .schema import ExportPayload, Strict
from .store import ObjectStore

logger = logging.getLogger(__name__)

CHUNK_POLL_SECONDS = 0.2  # how often the export looks at its chunk calls, at most
CHUNK_POLLS_PER_SECOND = 20  # ... and at most this many looks (a poll and a progress read each) a second
CHUNK_TRIES = 2  # a chunk whose call fails is tried once more; then the export fails, naming it
STOP_CHECK_SECONDS = 1.0  # how often a rendering chunk looks for the stop marker
REPORT_SECONDS = 1.0  # how often, at most, a rendering chunk keeps its progress


class ChunkStopped(Exception):
    """The export was stopped (cancelled, or failed) while this chunk rendered: its frames are not wanted."""


def stop_key(job_id: str) -> str:
    return job_key(job_id, "chunks/stop")


def chunks_stopped(store: ObjectStore, job_id: str) -> bool:
    """Whether stop_chunks told the job's chunk calls to stop."""
    return store.size(stop_key(job_id)) is not None


def stop_chunks(store: ObjectStore, job_id: str) -> None:
    """
    Tell every chunk call of the job to stop: each looks for this marker before it starts and about once a
    second while it renders. Cancelling the calls by id is not enough: a stop can land between a spawn and
    the id it returns, and a parent killed outright cancels nothing.
    """
    store.write_bytes(stop_key(job_id), b"")


def chunk_key(export: ExportPayload, chunk: Chunk, encoder: Encoder) -> str:
    """
    Where the chunk is kept: named by everything that makes its frames (the export's kind, parameters and
    inputs, its frames, the encoder's settings), so an object found there can only be this chunk, encoded
    to join with the others by stream copy; in the folder of the job a retry retried first, if any.
    """
    made_of = [export.kind, export.params, {clip: entry.key for clip, entry in export.inputs.items()}]
    made_of += [chunk.first_frame, chunk.end_frame, encoder.arguments()]
    digest = hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()[:20]
    return job_key(export.chunks_of or export.job_id, f"chunks/{chunk.index:04d}-{digest}.mp4")


class ChunkCalls(Protocol):
    """What runs chunks as calls of their own: the executor the export runs on (executors.ExecutorBackend)."""

    def spawn(self, kind: str, payload: dict[str, Any]) -> str: ...

    def poll(self, call_id: str) -> CallState: ...

    def cancel(self, call_id: str) -> None: ...


def chunk_payload(export: ExportPayload, chunk: Chunk) -> dict[str, Any]:
    """A chunk call's payload (worker.run_chunk): its export's, and which frames."""
    return {"export": export.model_dump(mode="json"), "chunk": asdict(chunk)}


def keep_chunk(
    export: ExportPayload,
    params: Strict,
    clips,
    chunk: Chunk,
    *,
    store: ObjectStore,
    work_dir: Path,
    encoder: Encoder,
    fetch: Callable[[RenderPlan], RenderPlan],
    on_progress: Callable[[float], None] | None = None,
) -> Path | None:
    """
    Render the chunk and keep it in the store, unless it is kept already; the file it rendered here, if any.
    fetch(plan) brings the inputs the chunk's plan reads, or points it at them: the plan to render.
    """
    key = chunk_key(export, chunk, encoder)
    if store.size(key) is not None:
        logger.info("Chunk %d of %s was kept by an earlier run: used", chunk.index + 1, export.job_id)
        return None
    plan = fetch(build_plan(export.kind, params, clips, only=chunk))
    path = work_dir / f"chunk-{chunk.index:04d}.mp4"
    checked_at = time.monotonic()

    def rendered(seconds: float) -> None:
        nonlocal checked_at
        if time.monotonic() - checked_at >= STOP_CHECK_SECONDS:
            checked_at = time.monotonic()
            if chunks_stopped(store, export.job_id):
                raise ChunkStopped(f"Chunk {chunk.index + 1} was stopped: its export is no longer running.")
        if on_progress is not None:
            on_progress(seconds)

    render(plan, path, on_progress=rendered)
    store.upload_file(key, path)  # whole or not at all: a chunk counts only once complete
    logger.info("Chunk %d of %s rendered and kept as %s", chunk.index + 1, export.job_id, key)
    return path


def render_chunked(
    export: ExportPayload,
    params: Strict,
    clips,
    plan: RenderPlan,
    chunks: list[Chunk],
    *,
    store: ObjectStore,
    work_dir: Path,
    output: Path,
    fetch: Callable[[RenderPlan], RenderPlan],
    on_progress: Callable[[float], None],
    calls: ChunkCalls | None = None,
    on_chunks: Callable[[list[dict]], None] | None = None,
    earlier_calls: dict[int, str] | None = None,
) -> Encoder:
    """
    Render the plan's video chunk by chunk, keeping each in the store (a chunk already kept is used as it is),
    then the audio, then join them into `output`; on_progress(media seconds done) as for a whole render. With
    `calls`, each missing chunk is a call of its own and they render in parallel; else one after another here.
    fetch(plan) brings the inputs a plan reads (keep_chunk): here, only once the chunk calls are on their way.
    `earlier_calls` (chunk index -> call id) are the chunk calls an earlier run of this same call spawned.
    """
    encoder = choose_encoder()
    rendered_here: dict[int, Path] = {}
    audio = work_dir / "audio.m4a"
    if calls is None:
        for chunk in chunks:
            start = chunk.first_frame / plan.frame_rate
            path = keep_chunk(
                export, params, clips, chunk, store=store, work_dir=work_dir, encoder=encoder, fetch=fetch,
                on_progress=lambda seconds, start=start: on_progress(start + seconds),
            )  # fmt: skip
            if path is not None:
                rendered_here[chunk.index] = path
            on_progress(start + chunk.seconds(plan.frame_rate))
        render_audio(export, params, clips, audio, fetch)
    else:
        wait_for_chunk_calls(export, params, clips, plan, chunks, calls, store=store, encoder=encoder, audio=audio,
                             fetch=fetch, on_progress=on_progress, on_chunks=on_chunks,
                             earlier_calls=earlier_calls or {})  # fmt: skip
    paths = []
    for chunk in chunks:
        path = rendered_here.get(chunk.index) or work_dir / f"chunk-{chunk.index:04d}.mp4"
        if chunk.index not in rendered_here:
            store.download_file(chunk_key(export, chunk, encoder), path)
        paths.append(path)
    join(paths, audio, output)
    return encoder


def render_audio(export: ExportPayload, params: Strict, clips, audio: Path, fetch) -> None:
    """The whole timeline's audio, once, by the export's own call."""
    render(fetch(build_plan(export.kind, params, clips, only=AUDIO)), audio)


class ChunkStates:
    """
    Each chunk's state, time and call (records.ChunkState), told to the export's record on every change:
    queued from its spawn, rendering from the moment its call says it started (its progress), so the time
    shown is the chunk's own and not its wait for a worker.
    """

    def __init__(self, chunks: list[Chunk], frame_rate: int, on_change: Callable[[list[dict]], None] | None):
        self.states = {chunk.index: {"index": chunk.index, "seconds": chunk.seconds(frame_rate), "state": "waiting",
                                     "tries": 0} for chunk in chunks}  # fmt: skip
        self.on_change = on_change

    def set(self, chunk: Chunk, state: str, **fields) -> None:
        times = {"started_at": None, "finished_at": None} if state == "queued" else {}
        if state in ("rendered", "failed"):
            times = {"finished_at": datetime.now(UTC).isoformat()}
        self.states[chunk.index] |= {"state": state, **times, **fields}
        if self.on_change is not None:
            self.on_change([dict(one) for one in self.states.values()])

    def started(self, chunk: Chunk, progress: ChunkProgress) -> None:
        """A queued chunk whose call has said it started is rendering, since then."""
        if self.states[chunk.index]["state"] == "queued" and progress.started_at is not None:
            self.set(chunk, "rendering", started_at=progress.started_at.isoformat())


def wait_for_chunk_calls(
    export,
    params,
    clips,
    plan,
    chunks,
    calls: ChunkCalls,
    *,
    store,
    encoder,
    audio,
    fetch,
    on_progress,
    on_chunks,
    earlier_calls: dict[int, str],
) -> None:
    """
    Spawn a call for each chunk not kept yet (or adopt the one an earlier run of this call spawned, if the
    executor still knows it), render the audio meanwhile, and wait for them: a chunk whose call fails is tried once
    more, then the export fails naming it. Anything that ends this export (a cancel's SIGTERM or
    InputCancellation, a failure) stops the calls still running: an executor does not stop a call's children
    by itself. A KeyboardInterrupt does not: on Modal it is a preemption, and the re-run adopts them.
    on_chunks(states) hears of each chunk's state as it changes.
    """
    states = ChunkStates(chunks, plan.frame_rate, on_chunks)
    done = 0.0
    running: dict[str, tuple[Chunk, int]] = {}
    try:
        for chunk in chunks:
            if store.size(chunk_key(export, chunk, encoder)) is not None:
                done += chunk.seconds(plan.frame_rate)
                states.set(chunk, "kept earlier")
            elif adopted := adoptable(calls, earlier_calls.get(chunk.index)):
                logger.info("Chunk %d of %s: adopted its call %s from an earlier run", chunk.index + 1,
                            export.job_id, adopted)  # fmt: skip
                running[adopted] = (chunk, 1)
                states.set(chunk, "queued", call_id=adopted, tries=1)
            else:
                call_id = calls.spawn(CHUNK_KIND, chunk_payload(export, chunk))
                running[call_id] = (chunk, 1)
                states.set(chunk, "queued", call_id=call_id, tries=1)
        shown = done
        on_progress(done)
        render_audio(export, params, clips, audio, fetch)
        while running:
            time.sleep(max(CHUNK_POLL_SECONDS, len(running) / CHUNK_POLLS_PER_SECOND))
            rendering = 0.0
            for chunk, _ in running.values():
                progress = read_progress(store, export.job_id, chunk, chunk.seconds(plan.frame_rate))
                states.started(chunk, progress)
                rendering += progress.seconds
            if done + rendering > shown:  # a chunk tried again starts from 0: the sum may dip, the bar never
                shown = done + rendering
                on_progress(shown)
            for call_id, (chunk, tries) in list(running.items()):
                try:
                    state = calls.poll(call_id)
                except ExecutorUnavailable as error:  # could not tell: ask again next time
                    logger.warning("Chunk %d of %s: %s", chunk.index + 1, export.job_id, error)
                    continue
                if state.status is CallStatus.RUNNING:
                    continue
                del running[call_id]
                states.started(chunk, read_progress(store, export.job_id, chunk, chunk.seconds(plan.frame_rate)))
                if state.status is CallStatus.SUCCEEDED and store.size(chunk_key(export, chunk, encoder)) is not None:
                    done += chunk.seconds(plan.frame_rate)
                    states.set(chunk, "rendered")
                    if done > shown:
                        shown = done
                        on_progress(shown)
                elif tries < CHUNK_TRIES:
                    logger.warning("Chunk %d of %s failed (%s): trying it again", chunk.index + 1, export.job_id,
                                   state.message or state.status)  # fmt: skip
                    store.delete(progress_key(export.job_id, chunk))  # the try that failed: not this one's
                    call_id = calls.spawn(CHUNK_KIND, chunk_payload(export, chunk))
                    running[call_id] = (chunk, tries + 1)
                    states.set(chunk, "queued", call_id=call_id, tries=tries + 1)
                else:
                    states.set(chunk, "failed")
                    reason = state.message or state.status
                    raise RenderError(f"Chunk {chunk.index + 1} of {len(chunks)} failed twice: {reason}")
    except KeyboardInterrupt:
        raise  # a preemption: the chunk calls keep rendering for this call's re-run to adopt
    except BaseException:
        stop_chunks(store, export.job_id)
        for call_id in running:
            calls.cancel(call_id)
        raise


def adoptable(calls: ChunkCalls, call_id: str | None) -> str | None:
    """
    The call id, if the executor knows the call: running, or ended with an outcome the wait reads as any
    other (kept, or tried again). None if it is unknown, expired or cannot be told: spawn the chunk anew.
    """
    if not call_id:
        return None
    try:
        status = calls.poll(call_id).status
    except ExecutorUnavailable:
        return None  # a chunk rendered twice costs time, never frames: its key is the same
    return None if status in (CallStatus.UNKNOWN, CallStatus.EXPIRED) else call_id


def progress_key(job_id: str, chunk: Chunk) -> str:
    return job_key(job_id, f"chunks/{chunk.index:04d}.progress")


@dataclass(frozen=True)
class ChunkProgress:
    """What a chunk call keeps of itself in `chunks/<index>.progress`, for its export to read."""

    seconds: float = 0.0  # media seconds rendered
    started_at: datetime | None = None  # when the call started: from then on it is the chunk's own time


def report_progress(store: ObjectStore, job_id: str, chunk: Chunk) -> Callable[[float], None]:
    """
    A chunk call's on_progress: its media seconds done, kept at most once a second for its export to add up,
    with the call's start, which is kept at once.
    """
    started_at = datetime.now(UTC).isoformat()
    written_at, written = 0.0, 0.0

    def keep(seconds: float) -> None:
        kept = {"seconds": seconds, "started_at": started_at}
        store.write_bytes(progress_key(job_id, chunk), json.dumps(kept).encode())

    def report(seconds: float) -> None:
        nonlocal written_at, written
        if seconds > written and time.monotonic() - written_at >= REPORT_SECONDS:  # the first as soon as it moves
            written_at, written = time.monotonic(), seconds
            keep(seconds)

    keep(0.0)
    return report


def read_progress(store: ObjectStore, job_id: str, chunk: Chunk, length: float) -> ChunkProgress:
    """What a running chunk call last kept, its seconds within its chunk's `length`; nothing before it starts."""
    try:
        raw = store.read_bytes(progress_key(job_id, chunk), max_bytes=256)
        kept = json.loads(raw) if raw else {}
        seconds = float(kept.get("seconds", 0.0))
        started_at = datetime.fromisoformat(kept["started_at"]) if kept.get("started_at") else None
    except (OSError, ValueError, TypeError, AttributeError):  # torn, hostile or missing: it counts once it is kept
        return ChunkProgress()
    if started_at is not None and started_at.tzinfo is None:
        started_at = None
    return ChunkProgress(min(max(seconds, 0.0), length) if math.isfinite(seconds) else 0.0, started_at)


def forget_chunks(export: ExportPayload, chunks: list[Chunk], store: ObjectStore, encoder: Encoder) -> None:
    """
    Delete the kept chunks (encoded by `encoder`, as render_chunked said) and their progress once the output
    is stored; what a crash leaves, pruning does.
    """
    for chunk in chunks:
        try:
            store.delete(chunk_key(export, chunk, encoder))
            store.delete(progress_key(export.job_id, chunk))
        except Exception:  # storage hygiene only: never the export's failure
            logger.warning("Could not delete chunk %d of %s", chunk.index, export.job_id, exc_info=True)

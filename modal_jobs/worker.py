"""
The export worker: the same function runs in a Modal container and in a local worker process.

It never raises for expected failures; it returns its ExportResult (records.py)
as a dict, success or error, so that an exception out of Modal's call always
says something about the call, not about the video. The result is also stored
as `exports/<job_id>/result.json`, written last (after the output), so the
backend can decide a job whose call outcome has expired.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .chunks import (
    ChunkCalls,
    ChunkStopped,
    chunks_stopped,
    forget_chunks,
    keep_chunk,
    render_chunked,
    report_progress,
)
from .eta import RenderWork
from .events import EventSender
from .media import MediaProbeError, probe
from .pipeline import Chunk, RenderError, RenderPlan, build_plan, choose_encoder, part_costs, plan_chunks, render
from .progress import ProgressReporter
from .records import (
    MAX_RECORD_BYTES,
    OUTPUT,
    PROGRESS,
    RESULT,
    ExportResult,
    ProgressRecord,
    error_result,
    job_key,
    parse_progress,
)
from .schema import PAYLOAD_SCHEMA_VERSION, ClipFacts, ExportPayload, InvalidParams
from .store import ObjectStore

logger = logging.getLogger(__name__)

# Overall percent given to each stage: transfers report bytes, rendering reports media time.
DOWNLOAD_SHARE = (0, 10)
RENDER_SHARE = (10, 95)
UPLOAD_SHARE = (95, 99)


def log_to_stderr() -> None:
    """What the worker logs goes to the call's logs (worker.log locally, Modal's logs for a container)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_export(
    payload: Any, *, store: ObjectStore, call_id: str, attempt: int = 1, chunk_calls: ChunkCalls | None = None
) -> dict[str, Any]:
    """
    Render the export the payload describes; return its ExportResult as a dict (the call's return value).
    A chunked export's chunks are calls of their own on `chunk_calls` where given (chunks.py).
    """
    version = payload.get("schema_version") if isinstance(payload, dict) else None
    if version != PAYLOAD_SCHEMA_VERSION:
        return error_result(
            f"Payload schema version {version!r} is not supported by this worker "
            f"(it knows version {PAYLOAD_SCHEMA_VERSION}); deploy the matching worker."
        ).to_dict()
    try:
        export = ExportPayload.model_validate(payload)
        params = export.validated_params()
    except (ValidationError, InvalidParams) as error:
        return error_result(f"Invalid export payload: {error}").to_dict()

    earlier = _earlier_run(store, export.job_id, call_id)
    attempt = max(attempt, earlier.attempt + 1 if earlier else 1)
    events = None
    if export.events is not None:
        events = EventSender(url=export.events.url, secret=export.events.secret, job_id=export.job_id)
    reporter = ProgressReporter(
        store=store,
        job_id=export.job_id,
        call_id=call_id,
        attempt=attempt,
        on_record=events.progress if events else None,
    )
    reporter.start(message="Starting export")
    logger.info("Export %s (%s) started: call %s, attempt %d", export.job_id, export.kind, call_id, attempt)
    try:
        earlier_chunk_calls = {chunk.index: chunk.call_id for chunk in earlier.chunks} if earlier else {}
        result = _run(export, params, store=store, reporter=reporter, chunk_calls=chunk_calls,
                      earlier_chunk_calls=earlier_chunk_calls)  # fmt: skip
    except (RenderError, MediaProbeError, OSError) as error:
        result = error_result(str(error))
    except Exception as error:  # a bug, but the user still deserves a message and the backend a result
        logger.exception("Export %s failed unexpectedly", export.job_id)
        result = error_result(f"Unexpected {type(error).__name__}: {error}")
    # finished_at: when the work ended, which the backend may learn much later (nobody watching).
    identity = {"job_id": export.job_id, "call_id": call_id, "attempt": attempt}
    result = result.model_copy(update={**identity, "finished_at": datetime.now(UTC)})
    try:
        store.write_bytes(job_key(export.job_id, RESULT), result.to_json())
    except Exception as error:
        logger.exception("Could not store the result of %s", export.job_id)
        if result.succeeded:
            result = error_result(f"Could not store the result: {error}", **identity)
    if result.succeeded:
        reporter.finish(message="Export complete")
        logger.info("Export %s succeeded: %s s rendered with %s", export.job_id, result.duration, result.encoder)
    else:
        reporter.fail(result.message)
        logger.info("Export %s failed: %s", export.job_id, result.message)
    if events is not None:
        events.finished(result)  # after the records: an event is only a faster delivery of what they hold
    return result.to_dict()


def _earlier_run(store: ObjectStore, job_id: str, call_id: str) -> ProgressRecord | None:
    """
    The record an earlier run of this same call left, if any: an executor re-running a call (Modal, after a
    preemption) under its id. It counts the attempts, and names the chunk calls that run spawned.
    """
    try:
        raw = store.read_bytes(job_key(job_id, PROGRESS), max_bytes=MAX_RECORD_BYTES + 1)
    except (OSError, ValueError):  # unreadable: count from here
        return None
    previous = None if raw is None else parse_progress(raw)
    return previous if previous is not None and previous.call_id == call_id else None


def run_chunk(payload: Any, *, store: ObjectStore) -> dict[str, Any]:
    """One chunk of a chunked export, as a call of its own: render its frames and keep them (chunks.py)."""
    try:
        export = ExportPayload.model_validate(payload["export"])
        params = export.validated_params()
        chunk = Chunk(**payload["chunk"])
    except (KeyError, TypeError, ValidationError, InvalidParams) as error:
        return error_result(f"Invalid chunk payload: {error}").to_dict()
    encoder = choose_encoder()
    try:
        if chunks_stopped(store, export.job_id):
            raise ChunkStopped(f"Chunk {chunk.index + 1} was not started: its export is no longer running.")
        with tempfile.TemporaryDirectory(prefix=f"chunk-{export.job_id}-{chunk.index}-") as scratch:
            clips = _input_files(export, Path(scratch))
            keep_chunk(export, params, clips, chunk, store=store, work_dir=Path(scratch), encoder=encoder,
                       fetch=lambda plan: _read_in_place(export, clips, plan, store=store),
                       on_progress=report_progress(store, export.job_id, chunk))  # fmt: skip
    except (RenderError, MediaProbeError, OSError, ChunkStopped) as error:
        return error_result(str(error), job_id=export.job_id).to_dict()
    except Exception as error:
        logger.exception("Chunk %d of %s failed unexpectedly", chunk.index + 1, export.job_id)
        return error_result(f"Unexpected {type(error).__name__}: {error}", job_id=export.job_id).to_dict()
    return ExportResult(status="success", job_id=export.job_id, encoder=encoder.name).to_dict()


def _run(
    export: ExportPayload,
    params,
    *,
    store: ObjectStore,
    reporter: ProgressReporter,
    chunk_calls: ChunkCalls | None,
    earlier_chunk_calls: dict[int, str],
) -> ExportResult:
    with tempfile.TemporaryDirectory(prefix=f"export-{export.job_id}-") as scratch:
        work_dir = Path(scratch)
        clips = _input_files(export, work_dir)
        plan = build_plan(export.kind, params, clips)
        output = work_dir / "output.mp4"
        low, high = RENDER_SHARE
        # A chunked export spawns its chunks first and fetches its inputs (for the audio) while they render;
        # its progress is the chunks' media seconds, so its clips' paces are not sampled.
        chunks = plan_chunks(plan.duration, plan.frame_rate, export.chunk_seconds)
        costs = []
        if not chunks:
            _fetch_inputs(export, clips, plan, store=store, reporter=reporter)
            if plan.sampled:
                reporter.update(percent=low, stage="preparing", message="Measuring each clip's pace")
                costs = part_costs(plan)
        work = RenderWork([part.seconds for part in plan.parts], costs)
        reporter.update(
            percent=low,
            stage="rendering",
            message="Rendering",
            processed_seconds=0.0,
            total_seconds=plan.duration,
            processed_work=0.0,
            total_work=plan.duration,
        )

        def rendered(done_seconds: float) -> None:
            done = min(done_seconds, plan.duration)
            reporter.update(
                percent=low + (high - low) * done / plan.duration,
                stage="rendering",
                message=f"Rendering {done:.0f} of {plan.duration:.0f} s",
                processed_seconds=done,
                processed_work=work.done(done),
            )

        started = time.monotonic()
        if chunks:
            encoder = render_chunked(
                export, params, clips, plan, chunks, store=store, work_dir=work_dir, output=output,
                fetch=lambda plan: _fetch_inputs(export, clips, plan, store=store),
                on_progress=rendered, calls=chunk_calls, on_chunks=reporter.set_chunks,
                earlier_calls=earlier_chunk_calls,
            )  # fmt: skip
        else:
            encoder = render(plan, output, on_progress=rendered)
        render_seconds = time.monotonic() - started
        info = probe(output, decode_end=False)  # ffmpeg wrote it whole: its facts are all that is wanted

        output_key = job_key(export.job_id, OUTPUT)
        uploaded = _transfer_progress(reporter, UPLOAD_SHARE, "uploading")
        size = store.upload_file(output_key, output, on_progress=uploaded)
        forget_chunks(export, chunks, store, encoder)
        return ExportResult(
            status="success",
            output_key=output_key,
            duration=info.duration,
            width=info.display_width,
            height=info.display_height,
            size=size,
            render_seconds=round(render_seconds, 3),
            encoder=encoder.name,
            encoder_fallback=encoder.fallback_reason or "",
        )


def _input_files(export: ExportPayload, work_dir: Path) -> dict[int, tuple[Path, ClipFacts]]:
    """Where each input clip is fetched to, with its facts: all a plan needs, before any clip is here or is read."""
    return {
        int(clip_id): (work_dir / f"input-{clip_id}{Path(entry.key).suffix}", entry.facts())
        for clip_id, entry in export.inputs.items()
    }


def _fetch_inputs(
    export: ExportPayload, clips, plan: RenderPlan, *, store, reporter: ProgressReporter | None = None
) -> RenderPlan:
    """Download the inputs the plan reads and only those, unless they are here already; the plan, as it was."""
    needed = [(clip_id, path) for clip_id, (path, _) in sorted(clips.items())
              if str(path) in plan.input_arguments and not path.exists()]  # fmt: skip
    low, high = DOWNLOAD_SHARE
    for number, (clip_id, path) in enumerate(needed, start=1):
        share = (low + (high - low) * (number - 1) / len(needed), low + (high - low) * number / len(needed))
        progress = _transfer_progress(reporter, share, "downloading", f"clip {number}") if reporter else None
        store.download_file(export.inputs[str(clip_id)].key, path, on_progress=progress)
    return plan


def _read_in_place(export: ExportPayload, clips, plan: RenderPlan, *, store) -> RenderPlan:
    """
    The plan reading its inputs where the store keeps them. A chunk reads a window of its clips, seeking to it:
    ffmpeg then asks the store for about that window's bytes, where a download would bring each clip whole
    (a 40-minute clip to each of 40 chunk containers).
    """
    keys = {str(path): export.inputs[str(clip_id)].key for clip_id, (path, _) in clips.items()}
    read, arguments = [], iter(plan.input_arguments)
    for argument in arguments:
        if argument == "-i":
            source = next(arguments)
            read += store.ffmpeg_input(keys[source]) if source in keys else ["-i", source]
        else:
            read.append(argument)
    return replace(plan, input_arguments=read)


def _transfer_progress(reporter: ProgressReporter, share: tuple[float, float], stage: str, what: str = ""):
    low, high = share

    def progressed(done: int, total: int) -> None:
        fraction = done / total if total else 1.0
        label = f" {what}" if what else ""
        reporter.update(
            percent=low + (high - low) * fraction,
            stage=stage,
            message=f"{stage.capitalize()}{label}: {done / 1e6:.1f} of {total / 1e6:.1f} MB",
        )

    return progressed

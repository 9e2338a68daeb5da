"""
A long export rendered in chunks (issue 20), each kept in the store the moment it is complete, so a re-run of
the export (a preempted or crashed call, restarted under the same job) renders only the chunks still missing.

Imports no Django. A chunk is a run of output frames (pipeline.Chunk); the audio is rendered once for the
whole timeline and the chunks are joined by stream copy (pipeline.join), so the result is the whole render's.
Today the export's own call renders its chunks one after another; next, they become calls of their own.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from .pipeline import AUDIO, Chunk, Encoder, RenderPlan, build_plan, choose_encoder, join, render
from .records import job_key
from .schema import ExportPayload, Strict
from .store import ObjectStore

logger = logging.getLogger(__name__)


def chunk_key(export: ExportPayload, chunk: Chunk, encoder: Encoder) -> str:
    """
    Where the chunk is kept: named by everything that makes its frames (the export's kind, parameters and
    inputs, its frames, the encoder's settings), so an object found there can only be this chunk, encoded
    to join with the others by stream copy.
    """
    made_of = [export.kind, export.params, {clip: entry.key for clip, entry in export.inputs.items()}]
    made_of += [chunk.first_frame, chunk.end_frame, encoder.arguments()]
    digest = hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()[:20]
    return job_key(export.job_id, f"chunks/{chunk.index:04d}-{digest}.mp4")


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
    on_progress: Callable[[float], None],
) -> Encoder:
    """
    Render the plan's video chunk by chunk, keeping each in the store, then the audio, then join them into
    `output`; on_progress(media seconds done) as for a whole render. A chunk already kept is used as it is.
    """
    encoder = choose_encoder()
    paths = []
    for chunk in chunks:
        key = chunk_key(export, chunk, encoder)
        path = work_dir / f"chunk-{chunk.index:04d}.mp4"
        start = chunk.first_frame / plan.frame_rate
        if store.size(key) is not None:
            store.download_file(key, path)
            logger.info("Chunk %d of %d of %s was kept by an earlier run: used", chunk.index + 1, len(chunks), key)
        else:
            piece = build_plan(export.kind, params, clips, work_dir, only=chunk)
            render(piece, path, on_progress=lambda seconds, start=start: on_progress(start + seconds))
            store.upload_file(key, path)  # whole or not at all: a chunk counts only once complete
            logger.info("Chunk %d of %d rendered and kept as %s", chunk.index + 1, len(chunks), key)
        on_progress(start + chunk.seconds(plan.frame_rate))
        paths.append(path)
    audio = work_dir / "audio.m4a"
    render(build_plan(export.kind, params, clips, work_dir, only=AUDIO), audio)
    join(paths, audio, output)
    return encoder


def forget_chunks(export: ExportPayload, chunks: list[Chunk], store: ObjectStore) -> None:
    """Delete the kept chunks once the output is stored; what a crash leaves, prune_exports deletes."""
    encoder = choose_encoder()
    for chunk in chunks:
        try:
            store.delete(chunk_key(export, chunk, encoder))
        except Exception:  # storage hygiene only: never the export's failure
            logger.warning("Could not delete chunk %d of %s", chunk.index, export.job_id, exc_info=True)

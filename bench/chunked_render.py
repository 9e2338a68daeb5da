"""
Figure 10: a long export rendered in chunks (issue 20), against the same export rendered whole, same run.

- Speed-up: a 3-minute multi-clip export (three 60 s clips at 640x360) on the local executor, each worker
  pinned to one core of its own (LOCAL_EXECUTOR_CORES_PER_WORKER=1, as each Modal container has its own
  CPUs): rendered whole on one worker, and in 45 s chunks on two. Wall time from the spawn to the call's end.
- Overhead: the ffmpeg CPU seconds of the same export rendered in chunks (every chunk, the audio, the
  join; one after another in this process, every core free) over the whole render's.

Each is run RUNS times; the figures are medians.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import time
import uuid
from pathlib import Path

from bench.common import BENCH_DATA

RUNS = 3
CLIP_SECONDS = 60
CHUNK_SECONDS = 45
SPEED_UP_GOAL = 1.6
OVERHEAD_GOAL = 1.10


def make_clips(folder: Path) -> dict:
    from modal_jobs.media import generate_test_clip, probe
    from modal_jobs.schema import ClipFacts

    clips = {}
    for clip_id, (pattern, tone) in enumerate((("testsrc2", 440), ("smptehdbars", 660), ("testsrc", 880)), start=1):
        path = folder / f"clip-{clip_id}.mp4"
        if not path.exists():
            generate_test_clip(path, pattern=pattern, tone_hz=tone, seconds=CLIP_SECONDS, width=640, height=360)
        info = probe(path)
        clips[clip_id] = (path, ClipFacts(info.duration, info.width, info.height, info.has_audio))
    return clips


def params(clips) -> dict:
    return {"clips": [{"clip_id": clip_id, "start": 0, "end": CLIP_SECONDS} for clip_id in clips]}


def wall_seconds(folder: Path, clips, *, workers: int, chunk_seconds: float) -> float:
    """One export on a fresh local executor of `workers` one-core workers, spawn to end."""
    from modal_jobs.executors import CallStatus
    from modal_jobs.local_backend import LocalBackend
    from modal_jobs.schema import PAYLOAD_SCHEMA_VERSION
    from modal_jobs.store import FileSystemStore

    store = FileSystemStore(folder / "store")
    inputs = {}
    for clip_id, (path, facts) in clips.items():
        key = f"projects/bench/clips/{clip_id}.mp4"
        store.upload_file(key, path)
        inputs[str(clip_id)] = {"key": key, "duration": facts.duration, "width": facts.width,
                                "height": facts.height, "has_audio": facts.has_audio}  # fmt: skip
    payload = {"schema_version": PAYLOAD_SCHEMA_VERSION, "job_id": str(uuid.uuid4()), "kind": "multi_clip",
               "params": params(clips), "inputs": inputs, "chunk_seconds": chunk_seconds}  # fmt: skip
    backend = LocalBackend(root=folder / f"executor-{uuid.uuid4().hex}", max_workers=workers, cores_per_worker=1,
                           store_config={"type": "filesystem", "root": str(store.root)})  # fmt: skip
    started = time.perf_counter()
    call_id = backend.spawn("multi_clip", payload)
    while (state := backend.poll(call_id)).status is CallStatus.RUNNING:
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    if state.status is not CallStatus.SUCCEEDED:
        raise RuntimeError(f"The export failed: {state}")
    return seconds


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(folder: Path, clips, *, chunked: bool) -> float:
    """The ffmpeg CPU seconds of the export, whole or in chunks (this process's children)."""
    from modal_jobs.pipeline import AUDIO, build_plan, join, plan_chunks, render
    from modal_jobs.schema import MultiClipParams

    export = MultiClipParams.model_validate(params(clips))
    whole = build_plan("multi_clip", export, clips)
    before = children_cpu_seconds()
    if not chunked:
        render(whole, folder / "whole.mp4")
        return children_cpu_seconds() - before
    pieces = []
    for chunk in plan_chunks(whole.duration, whole.frame_rate, CHUNK_SECONDS):
        pieces.append(folder / f"chunk-{chunk.index}.mp4")
        render(build_plan("multi_clip", export, clips, only=chunk), pieces[-1])
    render(build_plan("multi_clip", export, clips, only=AUDIO), folder / "audio.m4a")
    join(pieces, folder / "audio.m4a", folder / "chunked.mp4")
    return children_cpu_seconds() - before


def run() -> dict:
    folder = BENCH_DATA / "chunked"
    folder.mkdir(parents=True, exist_ok=True)
    clips = make_clips(folder)
    whole, chunked, whole_cpu, chunked_cpu = [], [], [], []
    for _ in range(RUNS):
        whole.append(wall_seconds(folder, clips, workers=1, chunk_seconds=0))
        chunked.append(wall_seconds(folder, clips, workers=2, chunk_seconds=CHUNK_SECONDS))
        whole_cpu.append(cpu_seconds(folder, clips, chunked=False))
        chunked_cpu.append(cpu_seconds(folder, clips, chunked=True))
    shutil.rmtree(folder / "store", ignore_errors=True)
    return {
        "media_seconds": 3 * CLIP_SECONDS,
        "chunk_seconds": CHUNK_SECONDS,
        "whole_one_worker": statistics.median(whole),
        "chunked_two_workers": statistics.median(chunked),
        "speed_up": statistics.median(whole) / statistics.median(chunked),
        "whole_cpu": statistics.median(whole_cpu),
        "chunked_cpu": statistics.median(chunked_cpu),
        "overhead": statistics.median(chunked_cpu) / statistics.median(whole_cpu),
    }

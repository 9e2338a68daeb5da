"""
Figure 10, its model: a 40-minute 1080p export on Modal in 40 chunk containers, and the same model with the
configuration Remotion Lambda publishes, modelled from the chunk, audio and join times measured here.

It is a model, not a run on Modal. Measured in this run, on this machine: seconds of rendering per media
second of a 1080p chunk (on one core, and on the whole machine), of the whole timeline's audio, and of the
join; the bytes per media second of a 1080p chunk. Stated, not measured: the assumptions in ASSUMED, each
printed with the figure. The path it adds up is the one the code takes (worker.py, chunks.py): the export
spawns its chunk calls one after another, each container starts, reads its window of its clips in place,
renders and keeps its chunk; the export meanwhile fetches every clip and renders the audio; once the last
chunk is kept it fetches them all, joins them and stores the output.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from bench.common import BENCH_DATA

EXPORT_SECONDS = 40 * 60
GOAL_SECONDS = 4 * 60
SAMPLE_SECONDS = 12  # a 1080p clip this long is rendered in chunks of SAMPLE_CHUNK_SECONDS to measure the rates
SAMPLE_CHUNK_SECONDS = 4
RUNS = 2
MEGABYTE = 1_000_000

# Stated assumptions (none can be measured without Modal, R2 and Lambda).
ASSUMED = {
    "modal_start_seconds": 10.0,  # a chunk container from spawn to running user code, image cached
    "spawn_seconds": 0.1,  # one FunctionMap round trip from the export's container
    "transfer_bytes_per_second": 100 * MEGABYTE,  # a container to and from R2, one stream
    "input_bits_per_second": 12_000_000,  # a 1080p phone or camera clip
    "keyframe_interval_seconds": 2.0,  # a chunk's read starts at the keyframe before its window
}
MODAL = {"containers": 40, "cores": "machine"}  # the chunk function asks for 8 CPUs: modelled as this machine's
# Remotion Lambda as its documentation publishes it: at most 200 functions for a long video (its default
# concurrency rises with the frame count and stops there), 2048 MB each (about 1.2 vCPU: modelled as one of
# this machine's cores), a cold start about 3.5 s longer than a warm one (its cost example: 11.02 s against
# 7.56 s). Its own figure for 40 minutes of 1080p is about 264 s.
REMOTION = {"containers": 200, "cores": "one", "start_seconds": 3.5, "published_seconds": 264}


def measure(folder: Path) -> dict:
    """Seconds of work per media second of a 1080p chunk (one core, every core), the audio and the join."""
    import os

    from modal_jobs.media import generate_test_clip, probe
    from modal_jobs.pipeline import AUDIO, build_plan, join, plan_chunks, render
    from modal_jobs.schema import ClipFacts, MultiClipParams

    source = folder / "clip-1080p.mp4"
    if not source.exists():
        generate_test_clip(source, pattern="testsrc2", tone_hz=440, seconds=SAMPLE_SECONDS, width=1920, height=1080)
    info = probe(source)
    clips = {1: (source, ClipFacts(info.duration, info.width, info.height, info.has_audio))}
    params = MultiClipParams.model_validate({"clips": [{"clip_id": 1, "start": 0, "end": SAMPLE_SECONDS}]})
    whole = build_plan("multi_clip", params, clips)
    chunks = plan_chunks(whole.duration, whole.frame_rate, SAMPLE_CHUNK_SECONDS)
    machine = os.sched_getaffinity(0)
    rates: dict[str, list[float]] = {"chunk_one_core": [], "chunk_machine": [], "audio": [], "join": []}
    sizes = []
    audio = folder / "audio-1080p.m4a"
    for _ in range(RUNS):
        pieces = []
        for chunk in chunks:
            pieces.append(folder / f"chunk-1080p-{chunk.index}.mp4")
            plan = build_plan("multi_clip", params, clips, only=chunk)
            os.sched_setaffinity(0, {min(machine)})  # ffmpeg inherits it: a one-core container
            try:
                rates["chunk_one_core"].append(timed(render, plan, pieces[-1]) / chunk.seconds(30))
            finally:
                os.sched_setaffinity(0, machine)
            rates["chunk_machine"].append(timed(render, plan, pieces[-1]) / chunk.seconds(30))
            sizes.append(pieces[-1].stat().st_size / chunk.seconds(30))
        audio_plan = build_plan("multi_clip", params, clips, only=AUDIO)
        rates["audio"].append(timed(render, audio_plan, audio) / whole.duration)
        rates["join"].append(timed(join, pieces, audio, folder / "joined-1080p.mp4") / whole.duration)
    measured = {name: statistics.median(values) for name, values in rates.items()}
    return measured | {"chunk_bytes_per_second": statistics.median(sizes)}


def timed(action, *arguments) -> float:
    started = time.perf_counter()
    action(*arguments)
    return time.perf_counter() - started


def model(measured: dict, *, containers: int, cores: str, start_seconds: float) -> dict:
    """The wall time of the export from its call's start, stage by stage, with `containers` chunks."""
    transfer = ASSUMED["transfer_bytes_per_second"]
    input_bytes_per_second = ASSUMED["input_bits_per_second"] / 8
    chunk_seconds = EXPORT_SECONDS / containers
    render_rate = measured["chunk_one_core" if cores == "one" else "chunk_machine"]
    # A chunk reads its window of its clips in place (worker._read_in_place), from the keyframe before it.
    window_read = chunk_seconds + ASSUMED["keyframe_interval_seconds"]
    chunk_path = (
        start_seconds
        + window_read * input_bytes_per_second / transfer
        + chunk_seconds * render_rate
        + chunk_seconds * measured["chunk_bytes_per_second"] / transfer
    )
    spawned_last = containers * ASSUMED["spawn_seconds"]
    audio_path = EXPORT_SECONDS * input_bytes_per_second / transfer + EXPORT_SECONDS * measured["audio"]
    output_bytes = EXPORT_SECONDS * measured["chunk_bytes_per_second"]
    tail = 2 * output_bytes / transfer + EXPORT_SECONDS * measured["join"]  # fetch the chunks, join, store
    total = max(spawned_last + chunk_path, audio_path) + tail
    # How slow a chunk may render (seconds per media second) before the goal is missed, all else as modelled.
    room = GOAL_SECONDS - tail - spawned_last - (chunk_path - chunk_seconds * render_rate)
    return {
        "containers": containers,
        "chunk_seconds": chunk_seconds,
        "chunk_path": chunk_path,
        "spawned_last": spawned_last,
        "audio_path": audio_path,
        "tail": tail,
        "total": total,
        "render_rate": render_rate,
        "slowest_render_rate_within_goal": room / chunk_seconds,
    }


def run() -> dict:
    folder = BENCH_DATA / "chunk-model"
    folder.mkdir(parents=True, exist_ok=True)
    measured = measure(folder)
    return {
        "goal_seconds": GOAL_SECONDS,
        "measured": measured,
        "assumed": ASSUMED,
        "modal": model(
            measured, containers=MODAL["containers"], cores=MODAL["cores"], start_seconds=ASSUMED["modal_start_seconds"]
        ),  # fmt: skip
        "remotion": model(
            measured,
            containers=REMOTION["containers"],
            cores=REMOTION["cores"],
            start_seconds=REMOTION["start_seconds"],
        ),  # fmt: skip
        "remotion_published_seconds": REMOTION["published_seconds"],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))

"""
A chunked render (issue 20): chunks of video rendered apart, joined by stream copy with the audio rendered
once, must be the whole render again: the same frames in the same places, the same length, the same audio.

The clips are awkward on purpose: 25, 30 and 24 fps sources into 30 fps, cut at times off the frame grid,
one of them silent, so every chunk starts between source frames and inside a clip.
"""

import dataclasses
import json
import logging
import os
import re
import signal
import time
import uuid
from datetime import timedelta
from pathlib import Path

import av
import numpy
import pytest

from modal_jobs import pipeline
from modal_jobs import store as store_module
from modal_jobs.executors import CallStatus
from modal_jobs.kinds import CHUNK_KIND
from modal_jobs.local_backend import LocalBackend, lock_is_held
from modal_jobs.media import generate_test_clip, probe, run_ffmpeg
from modal_jobs.pipeline import AUDIO, build_plan, join, output_frames, plan_chunks, render
from modal_jobs.records import job_key, parse_progress
from modal_jobs.schema import ClipFacts, FramingParams, MultiClipParams, OverlayParams
from modal_jobs.store import S3Store
from modal_jobs.worker import run_chunk, run_export
from testing_support.loopback import CountingRelay

from ..processes import kill_all_workers, wait_for
from .conftest import add_input, detailed_payload, input_entry, make_payload, read_log

PARAMS = {
    "multi_clip": MultiClipParams.model_validate(
        {
            "clips": [
                {"clip_id": 1, "start": 0.3, "end": 4.37},
                {"clip_id": 2, "end": 3.1},
                {"clip_id": 3, "start": 1.01, "end": 5},
            ]
        }
    ),
    "framing_ai": FramingParams.model_validate(
        {"clip_id": 1, "height": 320, "keyframes": [{"t": 0, "x": 0.2}, {"t": 2, "x": 0.8}, {"t": 4, "x": 0.3}]}
    ),
    "overlay": OverlayParams.model_validate(
        {
            "clip_id": 1,
            "highlights": [
                {"start": 0.5, "end": 1.9, "x": 0.5, "y": 0.5, "radius": 0.1, "color": "#ff0000"},
                {"start": 2.2, "end": 3.5, "x": 0.3, "y": 0.3, "radius": 0.1, "color": "#00ff00"},
            ],
        }
    ),
}
PARAMS_DURATION = (4.37 - 0.3) + 3.1 + (5 - 1.01)  # the multi-clip export's length
# Each frame of a chunked render against the same frame of the whole: only x264's two encodes differ (about
# 40 dB here); a frame shifted by one in these moving patterns scores under 25.
SAME_FRAME_PSNR = 35


@pytest.fixture(scope="session")
def awkward_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chunk-clips")
    specs = {1: ("testsrc2", 440, 4.37, 25), 2: ("smptebars", None, 3.1, 30), 3: ("testsrc", 880, 5.0, 24)}
    clips = {}
    for clip_id, (pattern, tone, seconds, rate) in specs.items():
        path = folder / f"clip-{clip_id}.mp4"
        generate_test_clip(path, pattern=pattern, tone_hz=tone, seconds=seconds, width=320, height=180, frame_rate=rate)
        info = probe(path)
        clips[clip_id] = (path, ClipFacts(info.duration, info.width, info.height, info.has_audio))
    return clips


def decoded_frames(path) -> list[numpy.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="gray").astype(float) for frame in container.decode(video=0)]


def decoded_samples(path) -> numpy.ndarray:
    with av.open(str(path)) as container:
        return numpy.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1)


def psnr(one: numpy.ndarray, other: numpy.ndarray) -> float:
    error = ((one - other) ** 2).mean()
    return float("inf") if error == 0 else 10 * numpy.log10(255**2 / error)


def render_chunked(kind, clips, folder, chunk_seconds):
    """What the chunk calls and the parent do, in one process: each chunk's video, the audio, the join."""
    whole = build_plan(kind, PARAMS[kind], clips)
    chunks = plan_chunks(whole.duration, whole.frame_rate, chunk_seconds)
    paths = []
    for chunk in chunks:
        path = folder / f"chunk-{chunk.index}.mp4"
        render(build_plan(kind, PARAMS[kind], clips, only=chunk), path)
        paths.append(path)
    render(build_plan(kind, PARAMS[kind], clips, only=AUDIO), folder / "audio.m4a")
    join(paths, folder / "audio.m4a", folder / "chunked.mp4")
    return chunks, folder / "chunked.mp4"


@pytest.mark.parametrize("kind", list(PARAMS))
def test_a_chunked_render_has_the_frames_length_and_audio_of_a_whole_render(kind, awkward_clips, tmp_path):
    whole_plan = build_plan(kind, PARAMS[kind], awkward_clips)
    render(whole_plan, tmp_path / "whole.mp4")
    chunks, chunked = render_chunked(kind, awkward_clips, tmp_path, chunk_seconds=1.2)

    assert len(chunks) >= 3
    whole_frames, chunked_frames = decoded_frames(tmp_path / "whole.mp4"), decoded_frames(chunked)
    assert len(chunked_frames) == len(whole_frames) == output_frames(whole_plan.duration, whole_plan.frame_rate)
    worst = min(range(len(whole_frames)), key=lambda index: psnr(whole_frames[index], chunked_frames[index]))
    assert psnr(whole_frames[worst], chunked_frames[worst]) > SAME_FRAME_PSNR, f"frame {worst} differs"
    assert probe(chunked).duration == pytest.approx(probe(tmp_path / "whole.mp4").duration, abs=1 / 30)
    # Rendered once, the audio meets no join: the samples are the whole render's, none missing, none changed.
    whole_samples, chunked_samples = decoded_samples(tmp_path / "whole.mp4"), decoded_samples(chunked)
    assert chunked_samples.shape == whole_samples.shape
    assert numpy.abs(chunked_samples - whole_samples).max() < 1e-6


def test_a_multi_clips_audio_rendered_apart_keeps_each_clip_in_step_with_its_frames(awkward_clips, tmp_path):
    """
    Apart from the frames, no concat filter pads a clip's audio to its last frame: the audio piece pads it
    itself. Before, each clip's audio ended at its cut, up to a frame early, and the clips after it drifted.
    """
    render(build_plan("multi_clip", PARAMS["multi_clip"], awkward_clips), tmp_path / "whole.mp4")
    audio = build_plan("multi_clip", PARAMS["multi_clip"], awkward_clips, only=AUDIO)
    render(audio, tmp_path / "audio.m4a")

    whole, alone = decoded_samples(tmp_path / "whole.mp4"), decoded_samples(tmp_path / "audio.m4a")
    assert numpy.abs(whole[:, : alone.shape[1]] - alone[:, : whole.shape[1]]).max() < 1e-6


def test_each_chunk_renders_exactly_its_frames_starting_on_a_keyframe(awkward_clips, tmp_path):
    whole = build_plan("multi_clip", PARAMS["multi_clip"], awkward_clips)
    for chunk in plan_chunks(whole.duration, whole.frame_rate, 1.2):
        path = tmp_path / f"chunk-{chunk.index}.mp4"
        render(build_plan("multi_clip", PARAMS["multi_clip"], awkward_clips, only=chunk), path)
        with av.open(str(path)) as container:
            assert [stream.type for stream in container.streams] == ["video"]
            frames = list(container.decode(video=0))
        assert len(frames) == chunk.frames
        assert frames[0].key_frame


def test_an_export_no_longer_than_two_chunks_renders_whole():
    assert plan_chunks(60.0, 30, 30.0) == []
    assert plan_chunks(600.0, 30, 0) == []  # 0 turns chunking off


def test_chunks_cover_every_frame_once_in_order_at_about_the_asked_length():
    chunks = plan_chunks(601.37, 30, 60.0)

    assert len(chunks) == 10
    assert chunks[0].first_frame == 0 and chunks[-1].end_frame == output_frames(601.37, 30) == 18042
    assert all(one.end_frame == following.first_frame for one, following in zip(chunks, chunks[1:], strict=False))
    assert {chunk.frames for chunk in chunks} <= {1804, 1805}
    assert [chunk.index for chunk in chunks] == list(range(10))


def test_the_whole_render_writes_the_frames_output_frames_counts(awkward_clips, tmp_path):
    plan = build_plan("multi_clip", PARAMS["multi_clip"], awkward_clips)
    render(plan, tmp_path / "whole.mp4")
    assert len(decoded_frames(tmp_path / "whole.mp4")) == pipeline.output_frames(plan.duration, plan.frame_rate)


@pytest.fixture
def chunked_payload(store, awkward_clips):
    """The multi-clip export above as the backend sends it, with chunks of 1.2 s: nine of them."""
    inputs = {clip_id: add_input(store, path) for clip_id, (path, _) in awkward_clips.items()}
    return make_payload("multi_clip", PARAMS["multi_clip"].model_dump(), inputs) | {"chunk_seconds": 1.2}


def chunk_log(caplog) -> tuple[int, int]:
    """How many chunks the export rendered and how many it found kept by an earlier run."""
    messages = [record.getMessage() for record in caplog.records if record.name == "modal_jobs.chunks"]
    return sum("rendered and kept" in message for message in messages), sum(
        "earlier run" in message for message in messages
    )


def test_a_long_export_renders_in_chunks_and_comes_out_as_its_whole_render(store, chunked_payload, caplog):
    caplog.set_level(logging.INFO, logger="modal_jobs.chunks")
    chunked = run_export(chunked_payload, store=store, call_id="local-test")
    whole = run_export(
        chunked_payload | {"chunk_seconds": 0, "job_id": str(uuid.uuid4())}, store=store, call_id="local-test"
    )

    assert chunked["status"] == whole["status"] == "success", (chunked, whole)
    assert chunk_log(caplog) == (9, 0)
    chunked_frames = decoded_frames(store.path(chunked["output_key"]))
    assert len(chunked_frames) == len(decoded_frames(store.path(whole["output_key"])))
    assert chunked["duration"] == pytest.approx(whole["duration"], abs=1 / 30)
    assert list(store.list_keys(job_key(chunked_payload["job_id"], "chunks/"))) == []  # deleted once it is stored


def test_a_chunk_call_reads_only_the_clips_its_frames_come_from(store, chunked_payload):
    """The first chunk lies in clip 1: with clips 2 and 3 gone from the store it still renders (before, a chunk
    call fetched every clip of its export, the whole of a 40-minute export's inputs in each container)."""
    for clip_id in ("2", "3"):
        store.delete(chunked_payload["inputs"][clip_id]["key"])
    first, *_ = plan_chunks(PARAMS_DURATION, 30, chunked_payload["chunk_seconds"])

    result = run_chunk({"export": chunked_payload, "chunk": dataclasses.asdict(first)}, store=store)

    assert result["status"] == "success", result
    kept = [key for key in store.list_keys(job_key(chunked_payload["job_id"], "chunks/")) if key.endswith(".mp4")]
    assert len(kept) == 1


def test_a_chunk_whose_clip_is_a_fifo_in_the_store_fails_naming_it_instead_of_waiting_for_ever(store, chunked_payload):
    """ffmpeg reads a chunk's clips in place: a FIFO there would block it until the call's time limit."""
    path = store.path(chunked_payload["inputs"]["1"]["key"])
    path.unlink()
    os.mkfifo(path)
    first, *_ = plan_chunks(PARAMS_DURATION, 30, chunked_payload["chunk_seconds"])

    result = run_chunk({"export": chunked_payload, "chunk": dataclasses.asdict(first)}, store=store)

    assert result["status"] == "error"
    assert "Not a regular file" in result["message"] and path.name in result["message"]


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory):
    """
    24 s with a keyframe every 2 s, as cameras write them, so a chunk of 4 s is a sixth of it. Lossless noise
    makes it 65 MB, far more than a loopback socket buffers: a first GET sent whole by the server ahead of
    ffmpeg's reads would otherwise bring a small clip whole whatever ffmpeg asks for.
    """
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    noise = "nullsrc=s=320x180:r=30:d=24,geq=lum='random(1)*255':cb=128:cr=128"
    run_ffmpeg(["-f", "lavfi", "-i", noise, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=24",
                "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", "60", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-movflags", "+faststart", "-shortest", str(path)])  # fmt: skip
    return path


LONG_CLIP_KEY = "projects/1/clips/long.mp4"


def long_clip_export(long_clip) -> tuple[dict, list]:
    """An overlay export of the long clip (at LONG_CLIP_KEY in the store), in chunks of 4 s."""
    entry = input_entry(LONG_CLIP_KEY, long_clip)
    payload = make_payload("overlay", PARAMS["overlay"].model_dump(), {1: entry}) | {"chunk_seconds": 4}
    return payload, plan_chunks(entry["duration"], 30, 4)


@pytest.fixture
def relayed_s3(s3_environment, long_clip):
    """An S3 store reached through a CountingRelay, the long clip in it."""
    with CountingRelay(s3_environment["AWS_S3_ENDPOINT_URL"]) as relay:
        store = S3Store.from_environment(s3_environment | {"AWS_S3_ENDPOINT_URL": relay.url})
        store.upload_file(LONG_CLIP_KEY, long_clip)
        yield relay, store


def kept_chunk(store, payload: dict, folder) -> Path:
    """The one chunk the export kept, fetched."""
    kept = [key for key in store.list_keys(job_key(payload["job_id"], "chunks/")) if key.endswith(".mp4")]
    store.download_file(kept[0], folder / "chunk.mp4")
    return folder / "chunk.mp4"


def test_a_chunk_call_reads_about_its_window_of_a_clip_from_the_store_not_the_whole_clip(
    relayed_s3, long_clip, tmp_path
):
    """A one-clip export's chunk seeks into its clip where the store keeps it. Before, each chunk call
    downloaded the whole clip: a 40-minute clip to each of 40 containers."""
    relay, store = relayed_s3
    payload, chunks = long_clip_export(long_clip)
    before = relay.bytes_served

    result = run_chunk({"export": payload, "chunk": dataclasses.asdict(chunks[3])}, store=store)
    served = relay.bytes_served - before

    assert result["status"] == "success", result
    assert len(decoded_frames(kept_chunk(store, payload, tmp_path))) == chunks[3].frames
    assert served < long_clip.stat().st_size / 3, (served, long_clip.stat().st_size)


@pytest.mark.parametrize("fault", ["cut", "stall"])
def test_a_read_cut_or_stalled_mid_chunk_is_taken_up_where_it_stopped_and_the_chunk_is_whole(
    fault, relayed_s3, long_clip, tmp_path, monkeypatch
):
    """Before, ffmpeg took a cut for the clip's end and exited 0 (the chunk was kept without most of its frames),
    and waited on a stalled read for ever."""
    monkeypatch.setattr(store_module, "READ_STALL_SECONDS", 2)
    relay, store = relayed_s3
    payload, chunks = long_clip_export(long_clip)
    relay.fail_after(fault, 6_000_000)  # within the chunk's window

    result = run_chunk({"export": payload, "chunk": dataclasses.asdict(chunks[3])}, store=store)

    assert relay.faults_made == 1
    assert result["status"] == "success", result
    assert len(decoded_frames(kept_chunk(store, payload, tmp_path))) == chunks[3].frames


def test_a_chunk_whose_clip_ends_early_in_the_store_is_not_kept_and_says_why(store, long_clip):
    """A clip truncated in the store (a partial copy): ffmpeg renders what there is and exits 0. Before, the short
    chunk was kept and joined as if whole."""
    store.write_bytes(LONG_CLIP_KEY, long_clip.read_bytes()[: long_clip.stat().st_size * 2 // 3])
    payload, chunks = long_clip_export(long_clip)
    last = chunks[-1]

    result = run_chunk({"export": payload, "chunk": dataclasses.asdict(last)}, store=store)

    assert result["status"] == "error", result
    assert f"of the {last.frames} frames asked for" in result["message"]
    assert [key for key in store.list_keys(job_key(payload["job_id"], "chunks/")) if key.endswith(".mp4")] == []


def test_a_rerun_of_an_export_killed_midway_renders_only_the_chunks_it_had_not_kept(
    store, chunked_payload, tmp_path, monkeypatch, caplog
):
    """Every worker SIGKILLed mid-render, then the export run again for the same job, as Modal re-runs one."""
    monkeypatch.setenv("EXPORTS_X264_PRESET", "veryslow")  # a chunk takes long enough to kill the worker mid-way
    backend = LocalBackend(root=tmp_path / "executor", store_config={"type": "filesystem", "root": str(store.root)})
    kept_prefix = job_key(chunked_payload["job_id"], "chunks/")
    try:
        call_id = backend.spawn("multi_clip", chunked_payload)
        kept_chunks = lambda: [key for key in store.list_keys(kept_prefix) if key.endswith(".mp4")]  # noqa: E731
        wait_for(lambda: len(kept_chunks()) >= 2, timeout=120, what="two chunks kept")
        kill_all_workers(backend.root)  # SIGKILL: the export's worker and its chunks' workers
        wait_for(lambda: backend.poll(call_id).status is not CallStatus.RUNNING, what="the call to end")
        kept = len(kept_chunks())
        assert 2 <= kept < 9

        caplog.set_level(logging.INFO, logger="modal_jobs.chunks")
        result = run_export(chunked_payload, store=store, call_id=call_id)
    finally:
        kill_all_workers(backend.root)

    assert result["status"] == "success", result
    assert chunk_log(caplog) == (9 - kept, kept)
    assert len(decoded_frames(store.path(result["output_key"]))) == output_frames(PARAMS_DURATION, 30)


@pytest.fixture
def local_executor(tmp_path, store):
    backend = LocalBackend(root=tmp_path / "executor", store_config={"type": "filesystem", "root": str(store.root)})
    yield backend
    kill_all_workers(backend.root)


def chunk_calls_of(backend) -> list[str]:
    calls = [json.loads(path.read_text()) for path in (backend.root / "calls").glob("*/call.json")]
    return [call["call_id"] for call in calls if call["kind"] == CHUNK_KIND]


def final_state(backend, call_id, timeout=180):
    return wait_for(
        lambda: (state := backend.poll(call_id)).status is not CallStatus.RUNNING and state,
        timeout=timeout,
        what="the export's call to end",
    )


def test_on_the_local_executor_the_chunks_are_calls_of_their_own_rendering_side_by_side(
    store, chunked_payload, local_executor
):
    parent = local_executor.spawn("multi_clip", chunked_payload)
    state = final_state(local_executor, parent)

    assert state.status is CallStatus.SUCCEEDED, state
    children = chunk_calls_of(local_executor)
    assert len(children) == 9
    spans = []
    for call_id in children:
        call_dir = local_executor.call_dir(call_id)
        started = json.loads((call_dir / "started.json").read_text())["started_at"]
        spans.append((started, json.loads((call_dir / "exit.json").read_text())["finished_at"]))
    spans.sort()
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)), "never two at once"
    output = store.path(state.result.output_key)
    assert len(decoded_frames(output)) == output_frames(PARAMS_DURATION, 30)


def first_chunk_started(backend) -> str:
    """Wait for a chunk call's worker to start; its call id."""
    return wait_for(
        lambda: next(
            (child for child in chunk_calls_of(backend) if (backend.call_dir(child) / "started.json").exists()), None
        ),
        timeout=60,
        what="a chunk to start",
    )


def test_cancelling_a_chunked_export_stops_every_chunk_within_three_seconds(
    store, detailed_clip, local_executor, monkeypatch
):
    """Each chunk is seconds of x264's slowest preset: a chunk left running would outlive the three seconds."""
    payload = detailed_payload(store, detailed_clip, monkeypatch)
    parent = local_executor.spawn("multi_clip", payload)
    first_chunk_started(local_executor)

    local_executor.cancel(parent)
    cancelled_at = time.monotonic()
    calls = [parent, *chunk_calls_of(local_executor)]
    wait_for(lambda: not any(lock_is_held(local_executor.call_dir(call) / "lock") for call in calls), timeout=20,
             what="every process of the export and its chunks to end")  # fmt: skip

    assert time.monotonic() - cancelled_at < 3
    assert local_executor.poll(parent).status is CallStatus.TERMINATED
    assert not any(local_executor._queued_markers(call) for call in calls)  # none left to start later
    kept = [key for key in store.list_keys(job_key(payload["job_id"], "chunks/")) if key.endswith(".mp4")]
    assert kept == []  # none finished after the cancel


def test_a_chunk_that_fails_twice_fails_the_export_naming_it(store, chunked_payload, local_executor, monkeypatch):
    """Clip 3 vanishes from the store once the export has its copy (for the audio) and the first chunk has
    started: every later chunk call that needs it fails."""
    monkeypatch.setenv("EXPORTS_X264_PRESET", "veryslow")
    local_executor.max_workers = 1  # the chunks one at a time: the later ones start after the input is gone
    clip = store.path(chunked_payload["inputs"]["3"]["key"])
    parent = local_executor.spawn("multi_clip", chunked_payload)
    first_chunk_started(local_executor)
    parents_copy = lambda: [copy for copy in local_executor.call_dir(parent).glob("tmp/*/input-3.mp4")  # noqa: E731
                            if copy.stat().st_size == clip.stat().st_size]  # fmt: skip
    wait_for(parents_copy, timeout=30, what="the export's own copy of clip 3")
    clip.unlink()

    state = final_state(local_executor, parent)

    assert state.status is CallStatus.FAILED
    assert re.fullmatch(r"Chunk \d of 9 failed twice: .*", state.message), state.message


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning to cores of their own needs two cores")
def test_on_pinned_workers_an_export_leaves_its_core_to_its_chunks_and_each_chunk_keeps_one(
    store, detailed_clip, local_executor, monkeypatch
):
    local_executor.cores_per_worker = 1
    payload = detailed_payload(store, detailed_clip, monkeypatch)
    parent = local_executor.spawn("multi_clip", payload)
    chunk = first_chunk_started(local_executor)

    worker_of = lambda call: json.loads((local_executor.call_dir(call) / "started.json").read_text())["worker_pid"]  # noqa: E731
    assert os.sched_getaffinity(worker_of(parent)) == os.sched_getaffinity(0)
    assert len(os.sched_getaffinity(worker_of(chunk))) == 1
    assert final_state(local_executor, parent).status is CallStatus.SUCCEEDED


def test_a_chunks_time_is_its_own_render_not_its_wait_for_a_worker(store, chunked_payload, local_executor):
    """One worker for nine chunks: before, each chunk's time ran from its spawn, so the last one's held the
    eight renders before it, and the times added up to several times the whole export's."""
    local_executor.max_workers = 1
    started = time.monotonic()
    parent = local_executor.spawn("multi_clip", chunked_payload)
    assert final_state(local_executor, parent).status is CallStatus.SUCCEEDED
    elapsed = time.monotonic() - started

    record = parse_progress(store.read_bytes(job_key(chunked_payload["job_id"], "progress.json")))
    assert {chunk.state for chunk in record.chunks} == {"rendered"}
    assert sum(chunk.took_seconds for chunk in record.chunks) < elapsed
    in_start_order = sorted(record.chunks, key=lambda chunk: chunk.started_at)
    assert all(later.started_at >= earlier.finished_at - timedelta(seconds=0.5)
               for earlier, later in zip(in_start_order, in_start_order[1:], strict=False))  # fmt: skip


def test_a_chunk_whose_worker_is_killed_is_rendered_again_and_only_it(
    store, detailed_clip, local_executor, monkeypatch
):
    payload = detailed_payload(store, detailed_clip, monkeypatch)
    parent = local_executor.spawn("multi_clip", payload)
    first = first_chunk_started(local_executor)
    started = json.loads((local_executor.call_dir(first) / "started.json").read_text())
    os.killpg(started["worker_pgid"], signal.SIGKILL)

    state = final_state(local_executor, parent)

    assert state.status is CallStatus.SUCCEEDED, state
    rendered = [json.loads((local_executor.call_dir(child) / "call.json").read_text())["payload"]["chunk"]["index"]
                for child in chunk_calls_of(local_executor)]  # fmt: skip
    killed = json.loads((local_executor.call_dir(first) / "call.json").read_text())["payload"]["chunk"]["index"]
    assert sorted(rendered) == sorted([0, 1, 2, 3, killed])  # every chunk once, the killed one twice
    assert len(decoded_frames(store.path(state.result.output_key))) == 240
    record = parse_progress(store.read_bytes(job_key(payload["job_id"], "progress.json")))
    tries = {chunk.index: chunk.tries for chunk in record.chunks}
    assert tries == {index: 2 if index == killed else 1 for index in range(4)}  # what the admin's job page lists


def test_a_chunked_exports_progress_adds_up_its_chunks_as_they_render_and_never_goes_back(
    store, detailed_clip, local_executor, monkeypatch
):
    """Before: the bar moved only when a chunk was complete, a quarter at a time here."""
    payload = detailed_payload(store, detailed_clip, monkeypatch)
    parent = local_executor.spawn("multi_clip", payload)
    assert final_state(local_executor, parent).status is CallStatus.SUCCEEDED

    done = [
        record["processed_seconds"] for record in read_log(store, payload["job_id"]) if record["stage"] == "rendering"
    ]
    assert done == sorted(done)
    assert any(0 < seconds < 8 and seconds not in (2, 4, 6) for seconds in done), done

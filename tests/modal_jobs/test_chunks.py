"""
A chunked render (issue 20): chunks of video rendered apart, joined by stream copy with the audio rendered
once, must be the whole render again: the same frames in the same places, the same length, the same audio.

The clips are awkward on purpose: 25, 30 and 24 fps sources into 30 fps, cut at times off the frame grid,
one of them silent, so every chunk starts between source frames and inside a clip.
"""

import av
import numpy
import pytest

from modal_jobs import pipeline
from modal_jobs.media import generate_test_clip, probe
from modal_jobs.pipeline import AUDIO, build_plan, join, output_frames, plan_chunks, render
from modal_jobs.schema import ClipFacts, FramingParams, MultiClipParams, OverlayParams

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
    whole = build_plan(kind, PARAMS[kind], clips, folder)
    chunks = plan_chunks(whole.duration, whole.frame_rate, chunk_seconds)
    paths = []
    for chunk in chunks:
        path = folder / f"chunk-{chunk.index}.mp4"
        render(build_plan(kind, PARAMS[kind], clips, folder, only=chunk), path)
        paths.append(path)
    render(build_plan(kind, PARAMS[kind], clips, folder, only=AUDIO), folder / "audio.m4a")
    join(paths, folder / "audio.m4a", folder / "chunked.mp4")
    return chunks, folder / "chunked.mp4"


@pytest.mark.parametrize("kind", list(PARAMS))
def test_a_chunked_render_has_the_frames_length_and_audio_of_a_whole_render(kind, awkward_clips, tmp_path):
    whole_plan = build_plan(kind, PARAMS[kind], awkward_clips, tmp_path)
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
    render(build_plan("multi_clip", PARAMS["multi_clip"], awkward_clips, tmp_path), tmp_path / "whole.mp4")
    audio = build_plan("multi_clip", PARAMS["multi_clip"], awkward_clips, tmp_path, only=AUDIO)
    render(audio, tmp_path / "audio.m4a")

    whole, alone = decoded_samples(tmp_path / "whole.mp4"), decoded_samples(tmp_path / "audio.m4a")
    assert numpy.abs(whole[:, : alone.shape[1]] - alone[:, : whole.shape[1]]).max() < 1e-6


def test_each_chunk_renders_exactly_its_frames_starting_on_a_keyframe(awkward_clips, tmp_path):
    whole = build_plan("multi_clip", PARAMS["multi_clip"], awkward_clips, tmp_path)
    for chunk in plan_chunks(whole.duration, whole.frame_rate, 1.2):
        path = tmp_path / f"chunk-{chunk.index}.mp4"
        render(build_plan("multi_clip", PARAMS["multi_clip"], awkward_clips, tmp_path, only=chunk), path)
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
    plan = build_plan("multi_clip", PARAMS["multi_clip"], awkward_clips, tmp_path)
    render(plan, tmp_path / "whole.mp4")
    assert len(decoded_frames(tmp_path / "whole.mp4")) == pipeline.output_frames(plan.duration, plan.frame_rate)

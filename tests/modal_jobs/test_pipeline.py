"""Each export kind renders a playable H.264/AAC MP4 from real-world inputs, checked by probing the output."""

import json
from itertools import pairwise

import av
import pytest

from modal_jobs import pipeline
from modal_jobs.media import generate_test_clip, probe
from modal_jobs.pipeline import build_plan, part_costs
from modal_jobs.records import job_key
from modal_jobs.schema import (
    MAX_CLIPS,
    MAX_HEIGHT,
    MAX_HIGHLIGHTS,
    MAX_KEYFRAMES,
    MIN_HEIGHT,
    ClipFacts,
    MultiClipParams,
    validate_params,
)
from modal_jobs.worker import run_export

from .conftest import add_input, make_payload


def render(store, kind, params, inputs):
    payload = make_payload(kind, params, inputs)
    result = run_export(payload, store=store, call_id="local-test")
    return payload, result


def output_info(store, result):
    assert result["status"] == "success", result
    info = probe(store.path(result["output_key"]))
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.width % 2 == 0 and info.height % 2 == 0
    assert (result["width"], result["height"], result["duration"]) == (info.width, info.height, info.duration)
    return info


def test_multi_clip_trims_normalizes_and_concatenates_with_silence_for_silent_clips(store, sample_clips):
    inputs = {1: add_input(store, sample_clips["sound"]), 2: add_input(store, sample_clips["silent"])}
    params = {"clips": [{"clip_id": 1, "start": 0.5, "end": 2.5}, {"clip_id": 2, "start": 0, "end": 1.5}]}
    _, result = render(store, "multi_clip", params, inputs)
    info = output_info(store, result)
    assert (info.width, info.height) == (480, 270)  # the first clip's size
    assert info.duration == pytest.approx(3.5, abs=0.1)
    assert info.frame_rate == pytest.approx(30)
    assert info.has_audio


def test_multi_clip_scales_to_the_requested_height(store, sample_clips):
    inputs = {1: add_input(store, sample_clips["sound"])}
    _, result = render(store, "multi_clip", {"clips": [{"clip_id": 1, "start": 0, "end": 1}], "height": 144}, inputs)
    info = output_info(store, result)
    assert (info.width, info.height) == (256, 144)


def test_framing_reframes_to_the_target_aspect_and_height(store, sample_clips):
    inputs = {1: add_input(store, sample_clips["silent"])}
    params = {
        "clip_id": 1,
        "aspect": "9:16",
        "height": 480,
        "keyframes": [{"t": 0, "x": 0.1}, {"t": 1, "x": 0.9}, {"t": 2, "x": 0.5}],
    }
    _, result = render(store, "framing_ai", params, inputs)
    info = output_info(store, result)
    assert (info.width, info.height) == (270, 480)
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert info.has_audio  # silence was added


def test_framing_follows_the_keyframes(store, sample_clips):
    """SMPTE bars: white on the left, blue on the right; the crop must move from one to the other."""
    inputs = {1: add_input(store, sample_clips["silent"])}
    params = {"clip_id": 1, "aspect": "1:1", "height": 144, "keyframes": [{"t": 0, "x": 0.0}, {"t": 1.9, "x": 1.0}]}
    _, result = render(store, "framing_ai", params, inputs)
    output_info(store, result)
    with av.open(str(store.path(result["output_key"]))) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    first, last = frames[0], frames[-1]
    # In the top rows the leftmost bar is light grey and the rightmost is blue.
    assert first[:60, :20].mean(axis=(0, 1)).min() > 150
    red, green, blue = last[:60, -20:].mean(axis=(0, 1))
    assert blue > 150 and red < 100


def test_overlay_draws_rings_only_during_their_time_range(store, sample_clips):
    inputs = {1: add_input(store, sample_clips["sound"])}
    highlight = {"start": 1.0, "end": 2.0, "x": 0.5, "y": 0.5, "radius": 0.3, "color": "#FF0000"}
    _, result = render(store, "overlay", {"clip_id": 1, "highlights": [highlight]}, inputs)
    info = output_info(store, result)
    assert (info.width, info.height, info.duration) == (480, 270, pytest.approx(3.0, abs=0.1))
    with av.open(str(store.path(result["output_key"]))) as container:
        frames = {round(frame.time, 2): frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)}
    ring_top = (270 // 2 - int(0.3 * 270) + 2, 480 // 2)  # a pixel on the ring's top edge (row, column)

    def pixel(time):
        return frames[min(frames, key=lambda t: abs(t - time))][ring_top]

    red, green, blue = pixel(1.5)
    assert red > 180 and green < 90 and blue < 90
    assert tuple(pixel(0.5)) != tuple(pixel(1.5))
    assert tuple(pixel(2.5)) != tuple(pixel(1.5))


def test_rotation_metadata_is_honoured(store, sample_clips):
    inputs = {1: add_input(store, sample_clips["rotated"])}
    assert (inputs[1]["width"], inputs[1]["height"]) == (270, 480)
    _, result = render(store, "multi_clip", {"clips": [{"clip_id": 1, "start": 0, "end": 1}]}, inputs)
    info = output_info(store, result)
    assert (info.width, info.height, info.rotation) == (270, 480, 0)


def test_a_variable_frame_rate_clip_comes_out_at_a_constant_rate(store, sample_clips):
    inputs = {1: add_input(store, sample_clips["variable_rate"])}
    _, result = render(store, "multi_clip", {"clips": [{"clip_id": 1, "start": 0, "end": 2}]}, inputs)
    output_info(store, result)
    with av.open(str(store.path(result["output_key"]))) as container:
        times = [frame.time for frame in container.decode(video=0)]
    gaps = {round(later - earlier, 3) for earlier, later in pairwise(times)}
    assert gaps == {round(1 / 30, 3)}


def test_the_result_is_stored_last_beside_the_output(store, sample_clips):
    inputs = {1: add_input(store, sample_clips["silent"])}
    payload, result = render(store, "multi_clip", {"clips": [{"clip_id": 1, "start": 0, "end": 1}]}, inputs)
    stored = json.loads(store.read_bytes(job_key(payload["job_id"], "result.json")))
    assert stored == result
    output = store.path(result["output_key"])
    assert output.stat().st_mtime <= store.path(job_key(payload["job_id"], "result.json")).stat().st_mtime
    assert result["size"] == output.stat().st_size


def test_a_missing_input_is_an_error_result_not_an_exception(store, sample_clips):
    entry = add_input(store, sample_clips["silent"])
    store.delete(entry["key"])
    payload, result = render(store, "multi_clip", {"clips": [{"clip_id": 1, "start": 0, "end": 1}]}, {1: entry})
    assert result["status"] == "error"
    assert "No object" in result["message"]
    assert json.loads(store.read_bytes(job_key(payload["job_id"], "result.json")))["status"] == "error"


def test_the_worker_refuses_a_payload_version_it_does_not_know(store):
    result = run_export({"schema_version": 99, "job_id": "x"}, store=store, call_id="local-test")
    assert result == {
        "status": "error",
        "message": "Payload schema version 99 is not supported by this worker (it knows version 1); "
        "deploy the matching worker.",
    }


def test_the_worker_revalidates_params_against_its_inputs(store, sample_clips):
    inputs = {1: add_input(store, sample_clips["silent"])}
    _, result = render(store, "multi_clip", {"clips": [{"clip_id": 1, "start": 0, "end": 95}]}, inputs)
    assert result["status"] == "error"
    assert "clip 1: end 95.0 s is past its 2.0 s duration" in result["message"]


def test_a_render_records_libx264_as_its_encoder(store, sample_clips):
    inputs = {1: add_input(store, sample_clips["silent"])}

    _, result = render(store, "multi_clip", {"clips": [{"clip_id": 1, "start": 0, "end": 1}]}, inputs)

    assert (result["encoder"], "encoder_fallback" in result) == ("libx264", False)


def test_without_a_usable_nvenc_the_render_falls_back_to_libx264_and_says_why(store, sample_clips, monkeypatch):
    """This machine has no GPU: exactly a container whose driver libraries for video are missing."""
    monkeypatch.setenv("EXPORTS_VIDEO_ENCODER", "h264_nvenc")
    inputs = {1: add_input(store, sample_clips["sound"])}
    params = {"clip_id": 1, "aspect": "9:16", "height": 320, "keyframes": [{"t": 0, "x": 0.5}]}

    _, result = render(store, "framing_ai", params, inputs)

    output_info(store, result)
    assert result["encoder"] == "libx264"
    assert result["encoder_fallback"].startswith("h264_nvenc could not start: ")
    assert "libcuda" in result["encoder_fallback"]


# The schema's limits are the renderer's: the extreme of each renders


def extreme_params(case: str) -> tuple[str, dict]:
    if case == "keyframes":  # before: past 92 keyframes the crop expression nested too deep for ffmpeg
        keyframes = [{"t": index * 2.9 / MAX_KEYFRAMES, "x": index % 2} for index in range(MAX_KEYFRAMES)]
        return "framing_ai", {"clip_id": 1, "aspect": "1:1", "height": MIN_HEIGHT, "keyframes": keyframes}
    if case == "widest frame":
        return "framing_ai", {"clip_id": 2, "aspect": "17:9", "height": MAX_HEIGHT, "keyframes": [{"t": 0, "x": 0.5}]}
    if case == "clips of one frame":
        clips = [{"clip_id": 2, "start": index * 0.03, "end": index * 0.03 + 1 / 60} for index in range(MAX_CLIPS)]
        return "multi_clip", {"clips": clips, "frame_rate": 60, "height": MIN_HEIGHT}
    if case == "slowest rate":
        return "multi_clip", {"clips": [{"clip_id": 2, "start": 0, "end": 0.1}], "frame_rate": 10}
    highlight = {"start": 0, "end": 1, "x": 0.5, "y": 0.5, "radius": 0.5}
    return "overlay", {"clip_id": 2, "highlights": [highlight] * MAX_HIGHLIGHTS}


@pytest.mark.parametrize("case", ["keyframes", "widest frame", "clips of one frame", "slowest rate", "highlights"])
def test_the_extreme_of_every_limit_renders(store, sample_clips, case):
    inputs = {1: add_input(store, sample_clips["sound"]), 2: add_input(store, sample_clips["silent"])}
    kind, params = extreme_params(case)
    facts = {
        clip_id: ClipFacts(entry["duration"], entry["width"], entry["height"], entry["has_audio"])
        for clip_id, entry in inputs.items()
    }
    validate_params(kind, params, facts)

    _, result = render(store, kind, params, inputs)

    output_info(store, result)


def busy_and_flat(folder, seconds: float):
    """Moving detail, then one flat colour: x264's pace differs several times between them."""
    busy, flat = folder / "busy.mp4", folder / "flat.mp4"
    generate_test_clip(busy, pattern="testsrc2", tone_hz=None, seconds=seconds, width=640, height=360)
    generate_test_clip(flat, pattern="color", tone_hz=None, seconds=seconds, width=640, height=360)
    return busy, flat


@pytest.fixture(scope="module")
def busy_and_flat_clips(tmp_path_factory):
    return busy_and_flat(tmp_path_factory.mktemp("paces"), 2)


def plan_of(clips, seconds_each: float):
    """A multi-clip plan of the clips (each said to last `seconds_each`, of which the samples read the first)."""
    facts = ClipFacts(duration=seconds_each, width=640, height=360, has_audio=False)
    entries = {number: (path, facts) for number, path in enumerate(clips, start=1)}
    params = MultiClipParams.model_validate({"clips": [{"clip_id": n, "end": seconds_each} for n in entries]})
    return build_plan("multi_clip", params, entries)


def test_each_clip_of_a_long_multi_clip_export_is_sampled_for_its_pace(busy_and_flat_clips):
    """Before: the estimate took the first clip's pace for the whole export's (issue 17, figure 8 missed)."""
    busy_cost, flat_cost = part_costs(plan_of(busy_and_flat_clips, 60))

    assert busy_cost > 1.5 * flat_cost


def test_a_short_export_is_not_slowed_down_by_samples(busy_and_flat_clips):
    assert part_costs(plan_of(busy_and_flat_clips, 20)) == []  # 2 s of samples would be 5 % of 40 s
    assert part_costs(plan_of(busy_and_flat_clips[:1], 600)) == []  # one clip: nothing to weigh


def test_a_multi_clip_exports_records_carry_its_work_as_well_as_its_seconds(store, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "SAMPLES_SHARE", 1.0)  # sample even this short export
    monkeypatch.setenv("EXPORTS_X264_PRESET", "veryslow")
    busy, flat = busy_and_flat(tmp_path, 4)
    inputs = {1: add_input(store, busy), 2: add_input(store, flat)}
    # Long enough for records (one a second) while the busy clip renders, however fast the machine.
    params = {"clips": [{"clip_id": 1, "end": 4}, {"clip_id": 2, "end": 4}]}
    payload, result = render(store, "multi_clip", params, inputs)

    assert result["status"] == "success", result
    log = [json.loads(line) for line in store.path(job_key(payload["job_id"], "progress.log")).read_text().splitlines()]
    rendering = [record for record in log if record["stage"] == "rendering"]
    assert {record["total_work"] for record in rendering} == {8.0}
    midway = [record for record in rendering if 0 < record["processed_seconds"] < 8]
    # The busy first clip is most of the work: until the end its seconds count for more than their share.
    assert midway and all(record["processed_work"] > record["processed_seconds"] for record in midway)

"""Export parameters are validated once, the same way for the web app and the worker, with actionable messages."""

import pytest

from modal_jobs.schema import MAX_CLIPS, MAX_HIGHLIGHTS, MAX_KEYFRAMES, ClipFacts, InvalidParams, validate_params

CLIPS = {1: ClipFacts(duration=20.0, width=1280, height=720, has_audio=True), 2: ClipFacts(20.0, 1280, 720, False)}
HIGHLIGHT = {"start": 1, "end": 2, "x": 0.5, "y": 0.5, "radius": 0.1}


def errors_of(kind, params):
    with pytest.raises(InvalidParams) as raised:
        validate_params(kind, params, CLIPS)
    return raised.value.errors


def test_valid_params_of_each_kind_pass_with_defaults_filled_in():
    multi = validate_params("multi_clip", {"clips": [{"clip_id": 1, "end": 5}]}, CLIPS)
    assert (multi.clips[0].start, multi.height, multi.frame_rate) == (0.0, None, 30)
    framing = validate_params(
        "framing_ai", {"clip_id": 2, "keyframes": [{"t": 3, "x": 0.4}, {"t": 1, "x": 0.2}]}, CLIPS
    )
    assert (framing.aspect, framing.height, [k.t for k in framing.keyframes]) == ("9:16", 1280, [1, 3])
    overlay = validate_params("overlay", {"clip_id": 1, "highlights": [HIGHLIGHT]}, CLIPS)
    assert overlay.highlights[0].color == "#FFD400"


def test_a_trim_past_the_clip_names_the_clip_and_both_durations():
    params = {"clips": [{"clip_id": 1, "start": 0, "end": 5}, {"clip_id": 2, "start": 3, "end": 95}]}
    assert errors_of("multi_clip", params) == {"clips.1.end": "clip 2: end 95.0 s is past its 20.0 s duration"}


def test_a_start_past_the_clip_and_an_end_before_the_start_are_refused():
    assert errors_of("multi_clip", {"clips": [{"clip_id": 1, "start": 25, "end": 30}]}) == {
        "clips.0.start": "clip 1: start 25.0 s is past its 20.0 s duration"
    }
    assert errors_of("multi_clip", {"clips": [{"clip_id": 1, "start": 5, "end": 2}]}) == {
        "clips.0": "clip 1: end 2.0 s must be after start 5.0 s"
    }


def test_clips_of_other_projects_are_unknown():
    assert errors_of("overlay", {"clip_id": 7, "highlights": [HIGHLIGHT]}) == {"clip_id": "no clip 7 in this project"}
    assert errors_of("multi_clip", {"clips": [{"clip_id": 9, "end": 1}]}) == {
        "clips.0.clip_id": "clip 1: no clip 9 in this project"
    }


@pytest.mark.parametrize(
    "kind, params, field",
    [
        ("multi_clip", {"clips": []}, "clips"),
        ("multi_clip", {"clips": [{"clip_id": 1, "end": 1}] * (MAX_CLIPS + 1)}, "clips"),
        ("multi_clip", {"clips": [{"clip_id": 1, "end": 1}], "height": 100}, "height"),
        ("multi_clip", {"clips": [{"clip_id": 1, "end": 1}], "height": 4320}, "height"),
        ("multi_clip", {"clips": [{"clip_id": 1, "end": float("nan")}]}, "clips.0.end"),
        ("multi_clip", {"clips": [{"clip_id": 1, "end": float("inf")}]}, "clips.0.end"),
        ("multi_clip", {"clips": [{"clip_id": "1", "end": 1}]}, "clips.0.clip_id"),
        ("multi_clip", {"clips": [{"clip_id": 1, "end": "5"}]}, "clips.0.end"),
        ("multi_clip", {"clips": [{"clip_id": 1, "end": 1}], "surprise": True}, "surprise"),
        ("framing_ai", {"clip_id": 1, "keyframes": [{"t": 0, "x": 1.5}]}, "keyframes.0.x"),
        ("framing_ai", {"clip_id": 1, "keyframes": [{"t": 1, "x": 0.5}] * 2}, "keyframes"),
        ("framing_ai", {"clip_id": 1, "keyframes": [{"t": 0, "x": 0.5}] * (MAX_KEYFRAMES + 1)}, "keyframes"),
        ("framing_ai", {"clip_id": 1, "aspect": "9/16", "keyframes": [{"t": 0, "x": 0.5}]}, "aspect"),
        ("framing_ai", {"clip_id": 1, "aspect": "0:16", "keyframes": [{"t": 0, "x": 0.5}]}, "aspect"),
        ("framing_ai", {"clip_id": 1, "keyframes": [{"t": 30, "x": 0.5}]}, "keyframes.0.t"),
        ("overlay", {"clip_id": 1, "highlights": [{**HIGHLIGHT, "radius": 0}]}, "highlights.0.radius"),
        ("overlay", {"clip_id": 1, "highlights": [{**HIGHLIGHT, "color": "red"}]}, "highlights.0.color"),
        ("overlay", {"clip_id": 1, "highlights": [HIGHLIGHT] * (MAX_HIGHLIGHTS + 1)}, "highlights"),
        ("overlay", {"clip_id": 1, "highlights": [{**HIGHLIGHT, "end": 40}]}, "highlights.0.end"),
    ],
)
def test_out_of_bounds_and_wrongly_typed_params_are_refused_by_field(kind, params, field):
    assert field in errors_of(kind, params)


def test_unknown_kinds_and_non_object_params_are_refused():
    assert errors_of("slideshow", {}) == {
        "kind": "unknown export kind 'slideshow'; expected one of multi_clip, framing_ai, overlay"
    }
    assert errors_of("overlay", ["clip_id", 1]) == {"params": "params must be an object"}


# The schema's limits are the renderer's (test_pipeline.py renders the extreme of each)


def test_a_framing_frame_wider_than_the_renderer_takes_is_refused():
    """Before: 10:1 at 2160 high (21600 pixels wide) was accepted, and always failed to render."""
    errors = errors_of("framing_ai", {"clip_id": 1, "aspect": "10:1", "height": 2160, "keyframes": [{"t": 0, "x": 0}]})

    assert errors == {"params": "at 2160 pixels high, 10:1 is 21600 pixels wide; the widest is 4096"}


def test_a_multi_clip_frame_larger_than_the_renderer_takes_is_refused():
    panorama = {1: ClipFacts(duration=20.0, width=4096, height=144, has_audio=False)}

    with pytest.raises(InvalidParams) as raised:
        validate_params("multi_clip", {"clips": [{"clip_id": 1, "end": 5}], "height": 720}, panorama)

    assert raised.value.errors == {"height": "the first clip's shape makes a 20480×720 frame; the largest side is 4096"}


@pytest.mark.parametrize(("start", "end"), [(1.0, 1.01), (19.99, 20.02)])
def test_a_multi_clip_range_shorter_than_a_frame_is_refused(start, end):
    """Before: accepted, then the render always failed. (The clip ends at 20 s: the second is 0.01 s of it.)"""
    errors = errors_of("multi_clip", {"clips": [{"clip_id": 1, "start": start, "end": end}]})

    assert errors == {"clips.0.end": "clip 1: must be at least one frame (1/30 s) long"}


def test_every_shape_error_comes_at_once_in_the_forms_words():
    params = {"clip_id": 1, "highlights": [{"start": 0, "end": 1, "x": 1.5, "y": -1, "radius": 0.9, "colour": "red"}]}
    with pytest.raises(InvalidParams) as refused:
        validate_params("overlay", params, {})
    assert refused.value.errors == {
        "highlights.0.x": "highlight 1: x (horizontal position) must be between 0 and 1",
        "highlights.0.y": "highlight 1: y (vertical position) must be between 0 and 1",
        "highlights.0.radius": "highlight 1: radius (share of the frame's height) must be between 0 and 0.5",
        "highlights.0.colour": "highlight 1: colour is not a field of this export",
    }


def test_a_missing_or_mistyped_field_says_so_plainly():
    with pytest.raises(InvalidParams) as refused:
        validate_params("multi_clip", {"clips": [{"clip_id": 1, "end": "soon"}], "frame_rate": 100}, {})
    assert refused.value.errors == {
        "clips.0.end": "clip 1: end must be a number",
        "frame_rate": "frame rate must be between 10 and 60",
    }


@pytest.mark.parametrize(
    ("kind", "params", "expected"),
    [
        (
            "overlay",
            {"clip_id": 1, "highlights": [{"start": 0, "end": 1, "x": 1.5, "y": 0.5, "radius": 0.1},
                                          {"start": 2, "end": 25, "x": 0.5, "y": 0.5, "radius": 0.1}]},
            {"highlights.0.x": "highlight 1: x (horizontal position) must be between 0 and 1",
             "highlights.1.end": "highlight 2: end 25.0 s is past its 20.0 s duration"},
        ),
        (
            "overlay",
            {"clip_id": 1, "highlights": [{"start": 2, "end": 25, "x": 1.5, "y": 0.5, "radius": 0.1}]},
            {"highlights.0.x": "highlight 1: x (horizontal position) must be between 0 and 1",
             "highlights.0.end": "highlight 1: end 25.0 s is past its 20.0 s duration"},
        ),
        (
            "framing_ai",
            {"clip_id": 1, "keyframes": [{"t": 0, "x": 0.5}, {"t": 30, "x": 2}]},
            {"keyframes.1.x": "keyframe 2: x (horizontal position) must be between 0 and 1",
             "keyframes.1.t": "keyframe 2: 30.0 s is past the clip's 20.0 s duration"},
        ),
        (
            "multi_clip",
            {"clips": [{"clip_id": 1, "start": 0, "end": 30}, {"clip_id": 9, "end": 2}], "frame_rate": 100},
            {"frame_rate": "frame rate must be between 10 and 60",
             "clips.0.end": "clip 1: end 30.0 s is past its 20.0 s duration",
             "clips.1.clip_id": "clip 2: no clip 9 in this project"},
        ),
        (
            "framing_ai",
            {"clip_id": 1, "aspect": "sideways", "keyframes": [{"t": 0, "x": 0.5}, {"t": 21, "x": 0.5}]},
            {"aspect": "aspect must look like 9:16 (two whole numbers from 1 to 999)",
             "keyframes.1.t": "keyframe 2: 21.0 s is past the clip's 20.0 s duration"},
        ),
    ],
    ids=["overlay", "overlay-same-highlight", "framing_ai-same-keyframe", "multi_clip", "framing_ai"],
)  # fmt: skip
def test_an_error_of_shape_and_one_against_the_clip_come_together(kind, params, expected):
    """Before: a shape error hid every check against the clips, so a form was fixed and sent again, then refused."""
    assert errors_of(kind, params) == expected

"""
Export parameters and the worker payload, validated the same way in the web app
and in the worker (pydantic; no Django).

Validation has two steps: the shape (types, bounds, unknown keys) and then the
facts of the clips the parameters name (does the clip exist, is the trim inside
it). Both report `{field path: message}` with messages a user can act on, e.g.
`clips.1.end: clip 2: end 95.0 s is past its 20.0 s duration`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from .kinds import KINDS

PAYLOAD_SCHEMA_VERSION = 1

MAX_CLIPS = 50
MAX_HIGHLIGHTS = 100
MAX_KEYFRAMES = 200
MIN_HEIGHT, MAX_HEIGHT = 144, 2160
# The widest (or tallest) frame an export may render: H.264 on NVENC stops at 4096.
MAX_OUTPUT_SIDE = 4096
# Trims may end a hair past the probed duration (container rounding).
DURATION_TOLERANCE_SECONDS = 0.05

Seconds = Annotated[float, Field(ge=0, le=24 * 3600)]
SECONDS = TypeAdapter(Seconds, config=ConfigDict(strict=True, allow_inf_nan=False))
Fraction = Annotated[float, Field(ge=0, le=1)]
Height = Annotated[int, Field(ge=MIN_HEIGHT, le=MAX_HEIGHT)]
ClipId = Annotated[int, Field(ge=1, le=2**63 - 1)]


def even(value: float) -> int:
    """Nearest even size (H.264 with 4:2:0 chroma needs even dimensions)."""
    return max(2, int(round(value / 2)) * 2)


class InvalidParams(ValueError):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


@dataclass(frozen=True)
class ClipFacts:
    """What the backend probed about a clip; parameters are checked against it."""

    duration: float
    width: int
    height: int
    has_audio: bool


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class TimeRange(Strict):
    start: Seconds = 0.0
    end: Seconds

    @model_validator(mode="after")
    def end_after_start(self):
        if self.end <= self.start:
            raise ValueError(f"end {_seconds(self.end)} s must be after start {_seconds(self.start)} s")
        return self


class ClipRange(TimeRange):
    clip_id: ClipId


class MultiClipParams(Strict):
    clips: list[ClipRange] = Field(min_length=1, max_length=MAX_CLIPS)
    height: Height | None = None
    frame_rate: Annotated[int, Field(ge=10, le=60)] = 30

    def output_size(self, first: ClipFacts) -> tuple[int, int]:
        """The first clip's shape at the asked height (its own when none is asked)."""
        height = even(self.height or first.height)
        return even(height * first.width / first.height), height


class Keyframe(Strict):
    t: Seconds
    x: Fraction


class FramingParams(Strict):
    clip_id: ClipId
    aspect: str = "9:16"
    height: Height = 1280
    keyframes: list[Keyframe] = Field(min_length=1, max_length=MAX_KEYFRAMES)

    @field_validator("aspect")
    @classmethod
    def aspect_is_a_ratio(cls, value: str) -> str:
        match = re.fullmatch(r"([0-9]{1,3}):([0-9]{1,3})", value)  # not \d: it matches every script's digits
        if not match or int(match[1]) == 0 or int(match[2]) == 0:
            raise ValueError("aspect must look like 9:16 (two whole numbers from 1 to 999)")
        ratio = int(match[1]) / int(match[2])
        if not 0.1 <= ratio <= 10:
            raise ValueError("aspect must be between 1:10 and 10:1")
        return value

    @field_validator("keyframes")
    @classmethod
    def keyframes_in_time_order(cls, value: list[Keyframe]) -> list[Keyframe]:
        ordered = sorted(value, key=lambda keyframe: keyframe.t)
        for earlier, later in pairwise(ordered):
            if later.t == earlier.t:
                raise ValueError(f"two keyframes at {_seconds(later.t)} s")
        return ordered

    @model_validator(mode="after")
    def frame_fits(self):
        width, _ = self.output_size
        if width > MAX_OUTPUT_SIDE:
            raise ValueError(
                f"at {self.height} pixels high, {self.aspect} is {width} pixels wide; the widest is {MAX_OUTPUT_SIDE}"
            )
        return self

    @property
    def aspect_ratio(self) -> float:
        width, height = self.aspect.split(":")
        return int(width) / int(height)

    @property
    def output_size(self) -> tuple[int, int]:
        height = even(self.height)
        return even(height * self.aspect_ratio), height


class Highlight(TimeRange):
    start: Seconds
    x: Fraction
    y: Fraction
    radius: Annotated[float, Field(gt=0, le=0.5)]
    color: str = "#FFD400"

    @field_validator("color")
    @classmethod
    def color_is_hex(cls, value: str) -> str:
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
            raise ValueError("color must look like #FFD400")
        return value.upper()


class OverlayParams(Strict):
    clip_id: ClipId
    highlights: list[Highlight] = Field(min_length=1, max_length=MAX_HIGHLIGHTS)


PARAMS_MODELS: dict[str, type[Strict]] = dict(zip(KINDS, (MultiClipParams, FramingParams, OverlayParams), strict=True))


def clip_ids(kind: str, params: Mapping[str, Any]) -> list[int]:
    """Return the clip ids raw parameters name, best effort, so the caller can look their facts up."""
    found = []
    if kind == "multi_clip" and isinstance(params.get("clips"), list):
        found = [entry.get("clip_id") for entry in params["clips"][:MAX_CLIPS] if isinstance(entry, dict)]
    elif isinstance(params, Mapping):
        found = [params.get("clip_id")]
    return [value for value in found if isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 2**63]


def validate_params(kind: str, params: Any, clips: Mapping[int, ClipFacts]) -> Strict:
    """Return the validated parameters or raise InvalidParams with a message per field."""
    model = PARAMS_MODELS.get(kind)
    if model is None:
        raise InvalidParams({"kind": f"unknown export kind {kind!r}; expected one of {', '.join(KINDS)}"})
    if not isinstance(params, dict):
        raise InvalidParams({"params": "params must be an object"})
    try:
        validated = model.model_validate(params)
    except ValidationError as error:
        errors = _field_errors(error, model)
        for field, message in _check_valid_parts_against_clips(model, params, clips).items():
            errors.setdefault(field, message)
        raise InvalidParams(errors) from None
    errors = _check_against_clips(validated, clips)
    if errors:
        raise InvalidParams(errors)
    return validated


def _seconds(value: float) -> str:
    """Format seconds as a user reads them: 95.0, 12.25."""
    return f"{value:.1f}" if value == round(value, 1) else f"{value:g}"


# What each field is, in the words of the forms.
FIELD_LABELS = {
    "x": "x (horizontal position)",
    "y": "y (vertical position)",
    "radius": "radius (share of the frame's height)",
    "t": "time",
    "start": "start",
    "end": "end",
    "height": "height",
    "frame_rate": "frame rate",
    "clip_id": "clip",
    "clips": "clips",
    "keyframes": "keyframes",
    "highlights": "highlights",
}
ITEM_LABELS = {"clips": "clip", "keyframes": "keyframe", "highlights": "highlight"}
BOUND_ERRORS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}


def _field_errors(error: ValidationError, model: type[BaseModel]) -> dict[str, str]:
    """Every error at once, one per field, each in the user's words: `highlight 1: x (horizontal ...) must be ...`."""
    errors: dict[str, str] = {}
    for detail in error.errors(include_url=False):
        location = detail["loc"]
        field = ".".join(str(part) for part in location) or "params"
        errors.setdefault(field, _user_words(detail, location, model))
    return errors


def _user_words(detail: dict, location: tuple, model: type[BaseModel]) -> str:
    where = [
        f"{ITEM_LABELS[name]} {index + 1}"
        for name, index in pairwise(location)
        if name in ITEM_LABELS and isinstance(index, int)
    ]
    names = [part for part in location if isinstance(part, str)]
    label = FIELD_LABELS.get(names[-1], names[-1]) if names else "params"
    kind = detail["type"]
    if kind in BOUND_ERRORS:
        low, high = _bounds(model, location)
        if low is not None and high is not None:
            message = f"{label} must be between {low:g} and {high:g}"
        else:
            message = f"{label} {detail['msg'].lower().replace('input should be', 'must be')}"
    elif kind == "missing":
        message = f"{label} is required"
    elif kind == "extra_forbidden":
        message = f"{label} is not a field of this export"
    elif kind in {"float_type", "int_type", "float_parsing", "int_parsing", "finite_number"}:
        message = f"{label} must be a number"
    elif kind == "string_type":
        message = f"{label} must be text"
    else:
        message = detail["msg"].removeprefix("Value error, ")
    return ": ".join([*where, message])


def _bounds(model: type[BaseModel], location: tuple) -> tuple[float | None, float | None]:
    """The lower and upper bound declared on the field at `location` (Field(ge=..., le=...))."""
    current: Any = model
    field = None
    for part in location:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None, None
        field = current.model_fields[part]
        annotation = field.annotation
        arguments = getattr(annotation, "__args__", ())
        current = arguments[0] if arguments else annotation
    low = high = None
    for constraint in field.metadata if field else ():
        low = getattr(constraint, "ge", getattr(constraint, "gt", low))
        high = getattr(constraint, "le", getattr(constraint, "lt", high))
    return low, high


def _check_against_clips(params: Strict, clips: Mapping[int, ClipFacts]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if isinstance(params, MultiClipParams):
        for index, entry in enumerate(params.clips):
            errors |= _clip_range_errors(index, entry, clips, frame_rate=params.frame_rate)
        first = clips.get(params.clips[0].clip_id)
        if first is not None:
            width, height = params.output_size(first)
            if max(width, height) > MAX_OUTPUT_SIDE:
                errors["height"] = (
                    f"the first clip's shape makes a {width}×{height} frame; the largest side is {MAX_OUTPUT_SIDE}"
                )
        return errors
    clip = clips.get(params.clip_id)
    if clip is None:
        return {"clip_id": f"no clip {params.clip_id} in this project"}
    if isinstance(params, FramingParams):
        for index, keyframe in enumerate(params.keyframes):
            errors |= _keyframe_errors(index, keyframe.t, clip)
    else:
        for index, highlight in enumerate(params.highlights):
            errors |= _highlight_errors(index, highlight.start, highlight.end, clip)
    return errors


def _check_valid_parts_against_clips(model: type[Strict], params: dict, clips: Mapping[int, ClipFacts]) -> dict:
    """
    The shape failed somewhere; each part's times (and clip) whose own shape is right are checked against the
    clips all the same, so a form shows every error at once (an x out of range and an end past the clip's
    length, in the same highlight or not).
    """
    errors: dict[str, str] = {}
    if model is MultiClipParams:
        entries = params.get("clips")
        for index, raw in enumerate(entries[:MAX_CLIPS] if isinstance(entries, list) else []):
            fields = (
                {key: raw[key] for key in ("clip_id", "start", "end") if key in raw} if isinstance(raw, dict) else raw
            )
            entry = _valid_part(ClipRange, fields)
            if entry is not None:
                errors |= _clip_range_errors(index, entry, clips, frame_rate=None)
        return errors
    clip_id = params.get("clip_id")
    clip = clips.get(clip_id) if type(clip_id) is int else None  # not a bool, nor a list (unhashable)
    name = "keyframes" if model is FramingParams else "highlights"
    items = params.get(name)
    if clip is None or not isinstance(items, list):
        return errors
    for index, raw in enumerate(items[: MAX_HIGHLIGHTS if model is OverlayParams else MAX_KEYFRAMES]):
        if not isinstance(raw, dict):
            continue
        # Its times alone: an x out of range must not hide an end past the clip's length.
        if name == "highlights":
            times = _valid_part(TimeRange, {key: raw[key] for key in ("start", "end") if key in raw})
            if times is not None:
                errors |= _highlight_errors(index, times.start, times.end, clip)
        elif (t := _valid_seconds(raw.get("t"))) is not None:
            errors |= _keyframe_errors(index, t, clip)
    return errors


def _valid_part(model: type[Strict], raw: Any) -> Strict | None:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def _valid_seconds(raw: Any) -> float | None:
    try:
        return SECONDS.validate_python(raw)
    except ValidationError:
        return None


def _range_errors(field: str, label: str, clip: ClipFacts, start: float, end: float) -> dict[str, str]:
    duration = _seconds(clip.duration)
    if start >= clip.duration:
        return {f"{field}.start": f"{label}: start {_seconds(start)} s is past its {duration} s duration"}
    if end > clip.duration + DURATION_TOLERANCE_SECONDS:
        return {f"{field}.end": f"{label}: end {_seconds(end)} s is past its {duration} s duration"}
    return {}


def _clip_range_errors(
    index: int, entry: ClipRange, clips: Mapping[int, ClipFacts], *, frame_rate: int | None
) -> dict[str, str]:
    """One clip of a multi-clip export against its clip (and, when the frame rate is known, one frame at least)."""
    clip = clips.get(entry.clip_id)
    if clip is None:
        return {f"clips.{index}.clip_id": f"clip {index + 1}: no clip {entry.clip_id} in this project"}
    errors = _range_errors(f"clips.{index}", f"clip {index + 1}", clip, entry.start, entry.end)
    if not errors and frame_rate and min(entry.end, clip.duration) - entry.start < 1 / frame_rate - 1e-6:
        # times are kept to microseconds
        errors[f"clips.{index}.end"] = f"clip {index + 1}: must be at least one frame (1/{frame_rate} s) long"
    return errors


def _highlight_errors(index: int, start: float, end: float, clip: ClipFacts) -> dict[str, str]:
    return _range_errors(f"highlights.{index}", f"highlight {index + 1}", clip, start, end)


def _keyframe_errors(index: int, t: float, clip: ClipFacts) -> dict[str, str]:
    if t > clip.duration + DURATION_TOLERANCE_SECONDS:
        return {
            f"keyframes.{index}.t": (
                f"keyframe {index + 1}: {_seconds(t)} s is past the clip's {_seconds(clip.duration)} s duration"
            )
        }
    return {}


class ExportInput(Strict):
    """A clip as the worker receives it: where to read it and what the backend probed."""

    key: str = Field(pattern=r"^[A-Za-z0-9/_.\-]{1,255}$")
    duration: Annotated[float, Field(gt=0)]
    width: Annotated[int, Field(gt=0)]
    height: Annotated[int, Field(gt=0)]
    has_audio: bool

    @field_validator("key")
    @classmethod
    def key_stays_inside(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("key must be a relative path inside the store")
        return value

    def facts(self) -> ClipFacts:
        return ClipFacts(duration=self.duration, width=self.width, height=self.height, has_audio=self.has_audio)


class EventTarget(Strict):
    """Where the worker pushes its events (events.py), and the job's own signing secret."""

    url: str = Field(pattern=r"^https?://[^\s]{1,2000}$")
    secret: str = Field(pattern=r"^whsec_[A-Za-z0-9+/=]{16,200}$")


class ExportPayload(BaseModel):
    """What the backend sends to a worker. `schema_version` lets an old worker refuse a new payload clearly."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    schema_version: Literal[1]
    job_id: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    kind: Literal[KINDS]
    params: dict[str, Any]
    inputs: dict[str, ExportInput]
    events: EventTarget | None = None  # None: the backend takes no events; it learns by looking
    chunk_seconds: float = Field(default=0.0, ge=0)  # render in chunks of about this long (modal_jobs/chunks.py)
    # Whose folder the chunks are kept in: the first job a retry retried, so a retry uses what it left.
    chunks_of: str = Field(default="", pattern=r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$")

    def clip_facts(self) -> dict[int, ClipFacts]:
        return {int(clip_id): entry.facts() for clip_id, entry in self.inputs.items()}

    def validated_params(self) -> Strict:
        return validate_params(self.kind, self.params, self.clip_facts())

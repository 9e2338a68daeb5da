"""
What a worker leaves in the store for the backend: one definition, read and written by both sides.

Under `exports/<job_id>/` a worker writes `progress.json` (the latest
ProgressRecord; it doubles as the heartbeat), `progress.log` (every record, as
JSON lines), `output.mp4`, and last `result.json` (the ExportResult, also what
the call returns). The backend parses them with these models and nothing else.

Workers are trusted to run our code, not to write sane data (a bug, a truncated
write, a hostile container): parsing clamps what can be clamped (a percent out
of range, text too long, an estimate that is no duration), drops what cannot be
trusted (a call id in no backend's format), and refuses the rest (no percent,
no time): `parse_progress` and `parse_result` answer None for a record that is
not one. Pure pydantic, no Django: it runs in a bare container.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

PROGRESS = "progress.json"
PROGRESS_LOG = "progress.log"
RESULT = "result.json"
OUTPUT = "output.mp4"
# What a job leaves beside its output; pruned once the job is old.
RECORDS = (PROGRESS, PROGRESS_LOG, RESULT)

MAX_RECORD_BYTES = 64 * 1024
MAX_STAGE_CHARACTERS = 64
MAX_MESSAGE_CHARACTERS = 500
MAX_REMAINING_SECONDS = 86400.0
MAX_CALL_ID_CHARACTERS = 255


def job_key(job_id: str, name: str) -> str:
    """The key of one of a job's objects; keys are built from ids, never from user input."""
    return f"exports/{job_id}/{name}"


def _truncated(limit: int):
    return BeforeValidator(lambda value: value[:limit] if isinstance(value, str) else "")


def _percent(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("a percent is a finite number")
    return int(min(100, max(0, value)))


def _remaining(value: Any) -> float | None:
    """A duration a worker reported: finite, not negative, at most a day (longer is no estimate)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return min(float(value), MAX_REMAINING_SECONDS)


class ChunkState(BaseModel):
    """One chunk of a chunked export (chunks.py), as its export's call saw it last: for admins to look at."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    index: int
    seconds: float = 0.0  # its media length
    # waiting, queued (spawned), rendering, rendered, kept earlier, failed
    state: Annotated[str, _truncated(MAX_STAGE_CHARACTERS)] = ""
    call_id: Annotated[str, _truncated(MAX_CALL_ID_CHARACTERS)] = ""
    tries: int = 0
    started_at: AwareDatetime | None = None  # its (latest) call started rendering it, as the call said
    finished_at: AwareDatetime | None = None

    @property
    def took_seconds(self) -> float | None:
        """From its (latest) call's start to its end: its own time, not its wait for a worker."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class ProgressRecord(BaseModel):
    """The worker's latest word on a job: how far, at what stage, and its estimate of the time left."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    percent: Annotated[int, BeforeValidator(_percent)]
    worker_time: AwareDatetime
    stage: Annotated[str, _truncated(MAX_STAGE_CHARACTERS)] = ""
    message: Annotated[str, _truncated(MAX_MESSAGE_CHARACTERS)] = ""
    job_id: str = ""
    # As the worker was told it; only the backend can tell whether it is one of its ids (is_call_id).
    call_id: Annotated[str, _truncated(MAX_CALL_ID_CHARACTERS)] = ""
    attempt: int = 1
    processed_seconds: float = 0.0
    total_seconds: float = 0.0
    # The same, weighted by each part's pace (eta.RenderWork) where a render's parts go at paces of their own.
    processed_work: float | None = None
    total_work: float | None = None
    # The worker's estimate of the seconds left as of worker_time (eta.py); None until it is stable.
    remaining_seconds: Annotated[float | None, BeforeValidator(_remaining)] = None
    chunks: list[ChunkState] = Field(default_factory=list)  # a chunked export's chunks, where they render apart

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude=None if self.chunks else {"chunks"}).encode()


class ExportResult(BaseModel):
    """How a worker's export ended: returned by the call and stored as result.json, written last."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    status: Literal["success", "error"]
    message: str = ""  # why it failed
    job_id: str = ""
    call_id: str = ""
    attempt: int = 1
    finished_at: AwareDatetime | None = None  # when the work ended; the backend may learn it much later
    # A success's output and what the worker measured of it.
    output_key: str = ""
    duration: float = Field(default=0.0, ge=0)
    width: int = Field(default=0, ge=0)
    height: int = Field(default=0, ge=0)
    size: int = Field(default=0, ge=0)
    render_seconds: float | None = None
    encoder: str = ""
    encoder_fallback: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status == "success"

    def render_facts(self) -> dict[str, Any]:
        """What the admin's timeline keeps of the render."""
        facts = {"encoder": self.encoder, "encoder_fallback": self.encoder_fallback}
        facts = {name: value for name, value in facts.items() if value}
        return facts | ({} if self.render_seconds is None else {"render_seconds": self.render_seconds})

    def to_dict(self) -> dict[str, Any]:
        """What the call returns: plain JSON types, so the backend needs no pickled class of ours."""
        return self.model_dump(mode="json", exclude_defaults=True)

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_defaults=True).encode()


class WorkerEvent(BaseModel):
    """What a worker pushes to the backend (events.py): a progress record as written, or the result once stored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["progress", "result"]
    job_id: str
    record: ProgressRecord | None = None
    result: ExportResult | None = None

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


def error_result(message: str, **fields: Any) -> ExportResult:
    return ExportResult(status="error", message=message, **fields)


def parse_progress(raw: bytes | str | dict) -> ProgressRecord | None:
    """The record, or None when it is not one (see the module's docstring); raises nothing."""
    return _parse(ProgressRecord, raw)


def parse_result(raw: bytes | str | dict) -> ExportResult | None:
    return _parse(ExportResult, raw)


def parse_event(raw: bytes | str) -> WorkerEvent | None:
    event = _parse(WorkerEvent, raw)
    if event is None or (event.record is None) == (event.result is None):
        return None
    if (event.type == "progress") != (event.record is not None):
        return None
    return event


def _parse(model, raw):
    if isinstance(raw, bytes | str) and len(raw) > MAX_RECORD_BYTES:
        return None
    try:
        if isinstance(raw, dict):
            return model.model_validate(raw)
        return model.model_validate_json(raw)
    except (ValidationError, ValueError, RecursionError):
        return None

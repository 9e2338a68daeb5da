"""
Reading what workers write: their progress record and their result.

Workers are trusted to run our code, not to write sane data (a bug, a truncated
write, a hostile container): a record that is not what we expect is ignored or
clamped, and logged, never allowed to crash a request or corrupt a job.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime

from modal_jobs.backends import store_from_settings
from modal_jobs.store import job_key

logger = logging.getLogger(__name__)

MAX_RECORD_BYTES = 64 * 1024
CALL_ID_PATTERN = re.compile(r"^(fc-[A-Za-z0-9]{1,64}|local-[0-9a-f]{32})$")


@dataclass(frozen=True)
class ProgressRecord:
    percent: int
    stage: str
    message: str
    call_id: str
    sequence: int
    worker_time: datetime
    remaining_seconds: float | None  # the worker's estimate as of worker_time (modal_jobs/eta.py)


def read_record(job_id, name: str) -> bytes | None:
    """
    The record's bytes (one more than the limit at most, so an oversized one shows), or None when there is
    none or it cannot be opened: a directory or a link out of the store in its place reads as absent.
    Errors of the store itself (S3 unreachable) are not the record's and go up.
    """
    try:
        return store_from_settings().read_bytes(job_key(str(job_id), name), max_bytes=MAX_RECORD_BYTES + 1)
    except (OSError, ValueError) as error:  # ValueError: FileSystemStore refuses a key that resolves outside it
        logger.warning("Ignoring the %s of job %s: it cannot be read (%s)", name, job_id, error)
        return None


def read_progress(job_id) -> ProgressRecord | None:
    raw = read_record(job_id, "progress.json")
    return None if raw is None else parse_progress(raw, job_id=job_id)


def parse_progress(raw: bytes, *, job_id=None) -> ProgressRecord | None:
    if len(raw) > MAX_RECORD_BYTES:
        logger.warning("Ignoring a %d-byte progress record of job %s", len(raw), job_id)
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        logger.warning("Ignoring an unreadable progress record of job %s", job_id)
        return None
    if not isinstance(record, dict):
        logger.warning("Ignoring a progress record of job %s that is not an object", job_id)
        return None
    percent = record.get("percent")
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not math.isfinite(percent):
        logger.warning("Ignoring a progress record of job %s with percent %r", job_id, percent)
        return None
    worker_time = _time(record.get("worker_time"))
    if worker_time is None:
        logger.warning("Ignoring a progress record of job %s without a valid worker_time", job_id)
        return None
    call_id = record.get("call_id")
    sequence = record.get("sequence")
    return ProgressRecord(
        percent=int(min(100, max(0, percent))),
        stage=_text(record.get("stage"), 64),
        message=_text(record.get("message"), 500),
        call_id=call_id if isinstance(call_id, str) and CALL_ID_PATTERN.match(call_id) else "",
        sequence=sequence if isinstance(sequence, int) and not isinstance(sequence, bool) else 0,
        worker_time=worker_time,
        remaining_seconds=_seconds(record.get("remaining_seconds")),
    )


def read_result(job_id) -> dict | None:
    """Return the worker's stored result (success or error), or None when there is none or it is unreadable."""
    raw = read_record(job_id, "result.json")
    if raw is None:
        return None
    if len(raw) > MAX_RECORD_BYTES:
        logger.warning("Ignoring a result record of job %s larger than %d bytes", job_id, MAX_RECORD_BYTES)
        return None
    try:
        result = json.loads(raw)
    except ValueError:
        logger.warning("Ignoring an unreadable result record of job %s", job_id)
        return None
    return result if isinstance(result, dict) and result.get("status") in {"success", "error"} else None


def finished_at_of(result: dict | None) -> datetime | None:
    """The worker's own time of finishing, as its result reports it (None when absent or not a time)."""
    return _time(result.get("finished_at")) if isinstance(result, dict) else None


def _seconds(value) -> float | None:
    """A duration a worker reported: finite, not negative, at most a day (longer is no estimate)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return min(float(value), 86400.0)


def _text(value, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None

"""
Reading what workers write: their progress record and their result (modal_jobs/records.py defines both).

Workers are trusted to run our code, not to write sane data (a bug, a truncated
write, a hostile container): a record that is not what we expect is ignored or
clamped, and logged with the job's id, never allowed to crash a request or
corrupt a job.
"""

from __future__ import annotations

import logging

from modal_jobs.records import (
    MAX_RECORD_BYTES,
    PROGRESS,
    RESULT,
    ExportResult,
    ProgressRecord,
    job_key,
    parse_progress,
    parse_result,
)

from .storage import object_store

logger = logging.getLogger(__name__)


def read_record(job_id, name: str) -> bytes | None:
    """
    The record's bytes (one more than the limit at most, so an oversized one shows), or None when there is
    none or it cannot be opened: a directory or a link out of the store in its place reads as absent.
    Errors of the store itself (S3 unreachable) are not the record's and go up.
    """
    try:
        return object_store().read_bytes(job_key(str(job_id), name), max_bytes=MAX_RECORD_BYTES + 1)
    except (OSError, ValueError) as error:  # ValueError: FileSystemStore refuses a key that resolves outside it
        logger.warning("Ignoring the %s of job %s: it cannot be read (%s)", name, job_id, error)
        return None


def read_progress(job_id) -> ProgressRecord | None:
    return _read(job_id, PROGRESS, parse_progress)


def read_result(job_id) -> ExportResult | None:
    """The worker's stored result (success or error), or None when there is none or it is unreadable."""
    return _read(job_id, RESULT, parse_result)


def _read(job_id, name: str, parse):
    raw = read_record(job_id, name)
    if raw is None:
        return None
    parsed = parse(raw)
    if parsed is None:
        logger.warning("Ignoring the %s of job %s: %d bytes that are no such record", name, job_id, len(raw))
    return parsed

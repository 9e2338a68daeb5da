"""A corrupt, truncated or hostile progress record is ignored or clamped, logged, and never crashes a look."""

import json
import logging
from datetime import UTC, datetime

import pytest

from exports import services
from exports.models import ExportJob, ExportStatus, Trigger
from modal_jobs.backends import store_from_settings
from modal_jobs.store import job_key

from ..factories import ExportJobFactory

pytestmark = pytest.mark.django_db

CALL_ID = "local-" + "d" * 32


def good_record(**changes) -> dict:
    return {
        "percent": 30,
        "stage": "rendering",
        "message": "Rendering 3 of 10 s",
        "call_id": CALL_ID,
        "sequence": 7,
        "worker_time": datetime.now(UTC).isoformat(),
    } | changes


@pytest.fixture
def job(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EXPORTS_PROGRESS_INTERVAL_SECONDS = 0
    settings.EXPORTS_EXECUTOR_INTERVAL_SECONDS = 3600  # only the progress read matters here
    job = ExportJobFactory(status=ExportStatus.PROCESSING, modal_call_id=CALL_ID, progress=20)
    ExportJob.objects.filter(pk=job.pk).update(executor_checked_at=datetime.now(UTC))
    return job


def write(job, raw: bytes) -> None:
    store_from_settings().write_bytes(job_key(str(job.pk), "progress.json"), raw)


def look(job) -> ExportJob:
    services.reconcile_job(ExportJob.objects.get(pk=job.pk), trigger=Trigger.VIEW)
    return ExportJob.objects.get(pk=job.pk)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"percent": 5',  # truncated
        b"\x00\xff\xfe garbage",
        b"[1, 2, 3]",
        json.dumps(good_record(percent=float("nan"))).encode(),
        json.dumps(good_record(percent="fifty")).encode(),
        json.dumps(good_record(percent=True)).encode(),
        json.dumps(good_record(message="x" * 3_000_000)).encode(),  # megabytes of text
        json.dumps(good_record(worker_time="yesterday")).encode(),
    ],
    ids=["truncated", "binary", "not-an-object", "nan", "text-percent", "bool-percent", "megabytes", "bad-time"],
)
def test_an_unusable_record_is_ignored_and_logged(job, raw, caplog):
    write(job, raw)
    with caplog.at_level(logging.WARNING, logger="exports.records"):
        after = look(job)
    assert (after.status, after.progress, after.message) == (ExportStatus.PROCESSING, 20, "")
    assert caplog.records, "an ignored record is logged"


@pytest.mark.parametrize("percent, shown", [(1e9, 99), (-50, 20), (150, 99), (45.7, 45)])
def test_out_of_range_percentages_are_clamped_and_never_go_backwards(job, percent, shown):
    write(job, json.dumps(good_record(percent=percent)).encode())
    assert look(job).progress == shown


def test_hostile_text_is_truncated_and_a_forged_call_id_is_not_adopted(job):
    pending = ExportJobFactory(project=job.project, kind="overlay")
    record = good_record(stage="s" * 1000, message="m" * 1000, call_id="../../etc/passwd")
    store_from_settings().write_bytes(job_key(str(pending.pk), "progress.json"), json.dumps(record).encode())
    after = look(pending)
    assert (len(after.stage), len(after.message)) == (64, 500)
    assert (after.status, after.modal_call_id) == (ExportStatus.PENDING, "")

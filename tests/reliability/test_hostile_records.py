"""A corrupt, truncated or hostile progress record is ignored or clamped, logged, and never crashes a look."""

import io
import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exports import reconcile
from exports.models import ExportJob, ExportStatus, Trigger
from exports.storage import object_store
from modal_jobs.executors import CallStatus
from modal_jobs.records import job_key
from testing_support.faults import FailingReads

from ..factories import ExportJobFactory
from ..helpers import start
from ..processes import wait_for

pytestmark = pytest.mark.django_db

CALL_ID = "local-" + "d" * 32


def good_record(**changes) -> dict:
    return {
        "percent": 30,
        "stage": "rendering",
        "message": "Rendering 3 of 10 s",
        "call_id": CALL_ID,
        "worker_time": datetime.now(UTC).isoformat(),
    } | changes


@pytest.fixture
def job(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EXPORTS_PROGRESS_INTERVAL_SECONDS = 0
    settings.EXPORTS_EXECUTOR_INTERVAL_SECONDS = 3600  # only the progress read matters here
    job = ExportJobFactory(status=ExportStatus.PROCESSING, call_id=CALL_ID, progress=20)
    ExportJob.objects.filter(pk=job.pk).update(executor_checked_at=datetime.now(UTC))
    return job


def write(job, raw: bytes) -> None:
    object_store().write_bytes(job_key(str(job.pk), "progress.json"), raw)


def look(job) -> ExportJob:
    reconcile.reconcile_job(ExportJob.objects.get(pk=job.pk), trigger=Trigger.VIEW)
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
    object_store().write_bytes(job_key(str(pending.pk), "progress.json"), json.dumps(record).encode())
    after = look(pending)
    assert (len(after.stage), len(after.message)) == (64, 500)
    assert (after.status, after.call_id) == (ExportStatus.PENDING, "")


# Things in a record's place that are no records: the job is decided from the executor as if it were absent


def put_in_place(path: Path, thing: str, outside: Path) -> None:
    original = path.read_bytes() if path.is_file() else b""
    if path.is_file() or path.is_symlink():
        path.unlink()
    if thing == "directory":
        path.mkdir()
    elif thing == "link out of the store":
        path.symlink_to(outside)
    elif thing == "link loop":
        path.symlink_to(path)
    elif thing == "fifo":
        os.mkfifo(path)  # opening it to read would wait for a writer for ever
    elif thing == "huge sparse file":
        with open(path, "wb") as handle:
            handle.truncate(8 * 1024**3)
    elif thing == "truncated":
        path.write_bytes(original[: len(original) // 2])


def within(seconds: float, call):
    """Call it on a thread and give it `seconds`: a read that blocks fails the test instead of hanging the run."""
    answers = []
    thread = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert answers, f"no answer within {seconds} s"
    return answers[0]


def succeeded(executor, *jobs):
    """Wait until each call returned and its supervisor recorded how it ended (it writes exit.json just after)."""
    for job in jobs:
        wait_for(lambda job=job: executor.inner.poll(job.call_id).status is CallStatus.SUCCEEDED, what="calls")
        wait_for(lambda job=job: (executor.inner.call_dir(job.call_id) / "exit.json").exists(), what="exits")


THINGS = ["directory", "link out of the store", "link loop", "fifo", "huge sparse file"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("thing", THINGS)
def test_a_progress_record_that_is_no_file_never_jams_the_job(
    thing, executor, owner_client, project, clip, eager_checks, tmp_path, caplog
):
    """Before: the API answered 500 for a directory or an outside link, and the job stayed processing."""
    job = start(project, clip)
    succeeded(executor, job)
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(good_record(percent=77, message="read from outside the store")))
    put_in_place(object_store().path(job_key(str(job.pk), "progress.json")), thing, secret)

    active = within(20, lambda: owner_client.get("/api/exports/active/"))
    detail = within(20, lambda: owner_client.get(f"/api/exports/{job.pk}/"))

    assert (active.status_code, detail.status_code) == (200, 200)
    assert detail.json()["job"]["status"] == "complete"
    assert "read from outside" not in active.content.decode()
    assert any(str(job.pk) in record.getMessage() for record in caplog.records if record.name == "exports.records")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("name", "thing"),
    [
        ("return.json", "truncated"),
        ("return.json", "directory"),
        ("exit.json", "truncated"),
        ("exit.json", "directory"),
        ("return.json", "fifo"),
    ],
)
def test_a_broken_state_file_of_one_call_ends_that_job_alone(
    name, thing, executor, owner_client, project, clip, eager_checks, tmp_path
):
    """Before: a truncated return.json or exit.json answered 500 and stopped the user's other jobs as well."""
    broken, healthy = start(project, clip, "multi_clip"), start(project, clip, "overlay")
    succeeded(executor, broken, healthy)
    put_in_place(executor.inner.call_dir(broken.call_id) / name, thing, tmp_path)

    for _ in range(2):  # the first look may only read progress; the second asks the executor
        response = within(20, lambda: owner_client.get("/api/exports/active/"))
        assert response.status_code == 200

    broken.refresh_from_db()
    healthy.refresh_from_db()
    assert healthy.status == ExportStatus.COMPLETE
    assert broken.status in (ExportStatus.COMPLETE, ExportStatus.ERROR)


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_check_fails_is_counted_and_the_others_are_reconciled(
    executor, project, clip, eager_checks, monkeypatch
):
    """Before: the command logged a crashed batch, reported the jobs unchanged and exited 0."""
    from django.core.management import CommandError, call_command

    from exports import records

    failing, healthy = start(project, clip, "multi_clip"), start(project, clip, "overlay")
    succeeded(executor, failing, healthy)
    store = FailingReads(object_store(), str(failing.pk), RuntimeError("the store broke"))
    monkeypatch.setattr(records, "object_store", lambda: store)
    output = io.StringIO()

    with pytest.raises(CommandError, match="The check of 1 job"):
        call_command("reconcile_exports", stdout=output)

    summary = output.getvalue().split()
    assert summary[summary.index("completed") + 1] == summary[summary.index("error") + 1] == "1"
    assert ExportJob.objects.get(pk=healthy.pk).status == ExportStatus.COMPLETE
    assert ExportJob.objects.get(pk=failing.pk).status == ExportStatus.PROCESSING

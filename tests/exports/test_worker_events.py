"""
Signed events from workers: refused unless signed by the job's own secret, fresh and new; taken by the same
rules as a look, so events out of order, twice or after the end change nothing wrong.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from exports.events import MAX_EVENT_BYTES, secret_for
from exports.models import ExportJob, ExportStatus, Trigger, WorkingVideo
from exports.reconcile import reconcile_job
from modal_jobs.executors import CallStatus
from modal_jobs.records import OUTPUT, job_key

from ..factories import ExportJobFactory
from ..helpers import send_worker_event as send
from ..helpers import start
from ..processes import wait_for

pytestmark = pytest.mark.django_db

CALL_ID = "local-" + "e" * 32


def progress_event(job, *, percent=40, at=None, message="Rendering 4 of 10 s") -> dict:
    record = {
        "percent": percent,
        "stage": "rendering",
        "message": message,
        "call_id": job.call_id,
        "worker_time": (at or datetime.now(UTC)).isoformat(),
        "remaining_seconds": 12.5,
    }
    return {"type": "progress", "job_id": str(job.pk), "record": record}


def result_event(job, **result) -> dict:
    result = {"status": "success", "output_key": job_key(str(job.pk), OUTPUT), "duration": 1.0, "width": 320,
              "height": 180, "size": 2, "finished_at": datetime.now(UTC).isoformat()} | result  # fmt: skip
    return {"type": "result", "job_id": str(job.pk), "result": result}


@pytest.fixture
def job(project):
    return ExportJobFactory(project=project, status=ExportStatus.PROCESSING, call_id=CALL_ID, progress=10)


def store_output(job, settings, tmp_path) -> None:
    """The job's output, stored where its result event says it is: what a worker stores before its result."""
    settings.MEDIA_ROOT = tmp_path / "media"
    output = tmp_path / "media" / job_key(str(job.pk), OUTPUT)
    output.parent.mkdir(parents=True)
    output.write_bytes(b"ok")


def state_of(job) -> tuple:
    job = ExportJob.objects.get(pk=job.pk)
    return job.status, job.progress, job.message, job.events.count()


def test_a_progress_event_moves_the_bar_at_once(job):
    response = send(job.pk, progress_event(job, percent=40))

    assert (response.status_code, response.json()["outcome"]) == (200, "progressed")
    after = ExportJob.objects.get(pk=job.pk)
    assert (after.progress, after.message, after.remaining_seconds) == (40, "Rendering 4 of 10 s", 12.5)
    assert after.events_seen_at is not None


def test_a_progress_event_costs_the_database_one_write(job):
    """Its record's time is its receipt: a second write per event, on SQLite's one writer, doubled the p95 latency."""
    with CaptureQueriesContext(connection) as queries:
        response = send(job.pk, progress_event(job, percent=12))  # crossing no milestone: no timeline entry

    assert response.status_code == 200
    writes = [query["sql"] for query in queries if query["sql"].split()[0] in {"INSERT", "UPDATE", "DELETE"}]
    assert len(writes) == 1 and writes[0].startswith('UPDATE "exports_exportjob"'), writes


def test_an_older_record_arriving_late_or_a_lower_percent_never_moves_the_bar_back(job):
    now = datetime.now(UTC)
    send(job.pk, progress_event(job, percent=60, at=now))

    late = send(job.pk, progress_event(job, percent=30, at=now - timedelta(seconds=5), message="older"))
    lower = send(job.pk, progress_event(job, percent=20, at=now + timedelta(seconds=1), message="newer"))

    assert (late.status_code, lower.json()["outcome"]) == (409, "progressed")
    after = ExportJob.objects.get(pk=job.pk)
    assert (after.progress, after.message) == (60, "newer")


@pytest.mark.parametrize(
    "tamper",
    ["forged signature", "another job's secret", "stale timestamp", "from the future", "no signature"],
)
def test_an_event_not_signed_for_this_job_now_is_refused_and_changes_nothing(job, project, tamper):
    before = state_of(job)
    event = progress_event(job, percent=90)
    if tamper == "forged signature":
        response = send(job.pk, event, secret="whsec_" + "A" * 43 + "=")
    elif tamper == "another job's secret":
        response = send(job.pk, event, secret=secret_for(ExportJobFactory(project=project, kind="overlay").pk))
    elif tamper == "stale timestamp":
        response = send(job.pk, event, sent_at=datetime.now(UTC) - timedelta(minutes=10))
    elif tamper == "from the future":
        response = send(job.pk, event, sent_at=datetime.now(UTC) + timedelta(minutes=10))
    else:
        response = Client().post(f"/api/exports/{job.pk}/events/", data=event, content_type="application/json")

    assert response.status_code == 401
    assert state_of(job) == before


@pytest.mark.parametrize("kind", ["progress", "result"])
def test_a_replayed_event_is_refused_and_changes_nothing(job, kind, settings, tmp_path):
    """The same bytes and headers again, within the signature's tolerance, as an eavesdropper could send them."""
    store_output(job, settings, tmp_path)
    event = progress_event(job, percent=40) if kind == "progress" else result_event(job)
    signed = {"message_id": "msg_once", "sent_at": datetime.now(UTC)}

    first = send(job.pk, event, **signed)
    after_first = state_of(job)
    again = send(job.pk, event, **signed)

    assert (first.status_code, again.status_code) == (200, 409)
    assert state_of(job) == after_first


def test_an_oversized_body_is_refused_before_it_is_read_as_an_event(job):
    event = progress_event(job, message="x" * (MAX_EVENT_BYTES + 1))
    assert send(job.pk, event).status_code == 413
    assert ExportJob.objects.get(pk=job.pk).progress == 10


def test_an_event_about_another_job_is_refused_even_when_signed_for_this_one(job, project):
    other = ExportJobFactory(
        project=project, kind="overlay", status=ExportStatus.PROCESSING, call_id="local-" + "f" * 32
    )
    response = send(job.pk, progress_event(other, percent=70))  # signed with job's secret, about `other`

    assert response.status_code == 400
    assert (ExportJob.objects.get(pk=job.pk).progress, ExportJob.objects.get(pk=other.pk).progress) == (10, 0)


def test_garbage_signed_properly_is_a_bad_request_not_a_crash(job):
    assert send(job.pk, None, body=b"[1, 2").status_code == 400
    assert send(job.pk, {"type": "result", "job_id": str(job.pk)}).status_code == 400


def test_an_unknown_job_is_not_found(job):
    assert send(uuid.uuid4(), {"type": "progress"}, body=b"{}").status_code in (400, 404)
    unknown = uuid.uuid4()
    assert send(unknown, progress_event(job) | {"job_id": str(unknown)}).status_code == 404


def test_the_result_event_finalizes_once_with_the_workers_finish_time(job, settings, tmp_path):
    store_output(job, settings, tmp_path)
    event = result_event(job)

    first = send(job.pk, event)
    twice = send(job.pk, event)  # the same result again, as a retry with a new id would bring it

    assert (first.json()["outcome"], twice.json()["outcome"]) == ("completed", "terminal")
    after = ExportJob.objects.get(pk=job.pk)
    assert after.status == ExportStatus.COMPLETE
    assert after.finished_at == datetime.fromisoformat(event["result"]["finished_at"])
    assert WorkingVideo.objects.filter(export_job=job).count() == 1
    assert after.events.get(kind="completed").trigger == Trigger.WORKER


def test_a_result_whose_output_is_missing_fails_the_job_as_a_look_would(job, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    assert send(job.pk, result_event(job)).json()["outcome"] == "failed"
    assert ExportJob.objects.get(pk=job.pk).error_message == "The worker reported success but its output is missing."


def test_a_failure_event_fails_the_job_with_the_workers_reason(job):
    response = send(job.pk, result_event(job, status="error", message="Clip 3 has no video stream."))

    assert response.json()["outcome"] == "failed"
    assert ExportJob.objects.get(pk=job.pk).error_message == "Clip 3 has no video stream."


def test_events_after_a_cancel_change_nothing(job):
    ExportJob.objects.filter(pk=job.pk).update(status=ExportStatus.CANCELLED, finished_at=timezone.now())

    progress = send(job.pk, progress_event(job, percent=90))
    result = send(job.pk, result_event(job))

    assert (progress.status_code, progress.json()["outcome"]) == (409, "terminal")
    assert (result.status_code, result.json()["outcome"]) == (200, "terminal")
    assert ExportJob.objects.get(pk=job.pk).status == ExportStatus.CANCELLED
    assert not WorkingVideo.objects.filter(export_job=job).exists()


def test_while_events_arrive_looks_back_off_and_resume_when_they_stop(job, executor, eager_checks, settings):
    settings.EXPORTS_EVENTS_BACKOFF_SECONDS = 60
    reconcile_job(job, trigger=Trigger.VIEW)  # a look, before any event: the executor is asked
    polls = executor.calls["poll"]
    send(job.pk, progress_event(job))

    for _ in range(3):
        reconcile_job(ExportJob.objects.get(pk=job.pk), trigger=Trigger.VIEW)
    assert executor.calls["poll"] == polls  # the events are the news; the executor is not asked

    quiet = timezone.now() + timedelta(seconds=50)  # past a heartbeat and a half without an event
    reconcile_job(ExportJob.objects.get(pk=job.pk), trigger=Trigger.VIEW, now=quiet)
    assert executor.calls["poll"] == polls + 1


@pytest.mark.django_db(transaction=True)
def test_a_job_ends_with_nobody_looking_when_its_worker_has_a_server_to_tell(
    executor, project, clip, live_server, settings
):
    """Before: the job stayed processing until a page, a socket or reconcile_exports looked."""
    settings.EXPORTS_EVENTS_URL = live_server.url
    job = start(project, clip)

    wait_for(lambda: ExportJob.objects.get(pk=job.pk).status == ExportStatus.COMPLETE, what="the job to complete")

    completed = ExportJob.objects.get(pk=job.pk).events.get(kind="completed")
    assert completed.trigger == Trigger.WORKER
    assert executor.calls["poll"] == 0
    # The worker told the backend before its call returned: the call ends just after.
    wait_for(lambda: executor.inner.poll(job.call_id).status is CallStatus.SUCCEEDED, what="the call to return")


def test_a_result_that_cannot_be_taken_now_is_503_and_its_retry_under_the_same_id_is_taken(
    job, settings, tmp_path, monkeypatch
):
    """Before: the id was kept, so the worker's retry was refused as a replay and the job waited for a look."""
    from exports import reconcile

    store_output(job, settings, tmp_path)
    real = reconcile.object_store

    def store_down():
        raise ConnectionError("the bucket did not answer")

    monkeypatch.setattr(reconcile, "object_store", store_down)
    first = send(job.pk, result_event(job), message_id="msg_result")
    monkeypatch.setattr(reconcile, "object_store", real)
    again = send(job.pk, result_event(job), message_id="msg_result")

    assert (first.status_code, again.status_code) == (503, 200)
    assert ExportJob.objects.get(pk=job.pk).status == ExportStatus.COMPLETE


def test_a_result_whose_first_delivery_died_while_being_taken_is_taken_on_its_retry(
    job, settings, tmp_path, monkeypatch
):
    """
    Nothing after the kill runs (SystemExit stands in for SIGKILL of the backend). Before: the id was kept
    before the event was taken, so the worker's retry was refused as a replay and the job waited for a look.
    """
    from exports import reconcile

    store_output(job, settings, tmp_path)
    real = reconcile.object_store

    def killed_here():
        raise SystemExit("the backend was killed while taking the result")

    monkeypatch.setattr(reconcile, "object_store", killed_here)
    with pytest.raises(SystemExit):
        send(job.pk, result_event(job), message_id="msg_result")
    monkeypatch.setattr(reconcile, "object_store", real)
    retried = send(job.pk, result_event(job), message_id="msg_result")

    assert (retried.status_code, retried.json()["outcome"]) == (200, "completed")
    assert ExportJob.objects.get(pk=job.pk).status == ExportStatus.COMPLETE
    assert send(job.pk, result_event(job), message_id="msg_result").status_code == 409


def test_a_pending_cancel_is_confirmed_by_the_executor_at_the_normal_pace_while_events_arrive(
    job, executor, eager_checks, settings
):
    """A stopped worker sends no result: backing off would leave "Cancelling…" up for most of a minute."""
    settings.EXPORTS_EVENTS_BACKOFF_SECONDS = 60
    reconcile_job(job, trigger=Trigger.VIEW)
    send(job.pk, progress_event(job))
    ExportJob.objects.filter(pk=job.pk).update(cancel_requested_at=timezone.now())
    polls = executor.calls["poll"]

    reconcile_job(ExportJob.objects.get(pk=job.pk), trigger=Trigger.VIEW)
    assert executor.calls["poll"] == polls + 1


def test_a_long_exports_checks_back_off_with_its_age_so_it_costs_a_handful_not_one_a_minute(job, settings):
    from exports.reconcile import check_intervals

    settings.EXPORTS_EVENTS_BACKOFF_SECONDS = 60
    now = timezone.now()
    job.events_seen_at = now
    job.started_at = now - timedelta(minutes=2)
    assert check_intervals(job, now)["executor_checked_at"] == 60
    job.started_at = now - timedelta(minutes=20)
    assert check_intervals(job, now)["executor_checked_at"] == 600

"""reconcile_job against the real local executor: every outcome of docs/architecture.md's table."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from exports import services
from exports.executor import get_executor
from exports.models import ErrorReason, ExportJob, ExportStatus, WorkingVideo
from exports.reconcile import Outcome
from exports.storage import object_store
from modal_jobs.executors import CallStatus
from modal_jobs.records import job_key

from ..factories import ExportJobFactory
from ..helpers import reconcile, reconcile_until_finished, start
from ..processes import group_members, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

THREE_HOURS = timedelta(hours=3)


def executor_says(job, status):
    return wait_for(lambda: get_executor().backend.inner.poll(job.call_id).status is status, what=str(status))


def test_a_finished_call_is_finalized_once_with_a_working_video(executor, project, clip, eager_checks):
    job = start(project, clip)
    executor_says(job, CallStatus.SUCCEEDED)
    assert reconcile(job) is Outcome.COMPLETED
    assert reconcile(job) is Outcome.TERMINAL
    job.refresh_from_db()
    assert (job.status, job.progress, job.finished_at is not None) == (ExportStatus.COMPLETE, 100, True)
    assert WorkingVideo.objects.filter(export_job=job).count() == 1


def test_the_completion_on_the_timeline_says_which_encoder_rendered(executor, project, clip, eager_checks):
    job = start(project, clip)
    executor_says(job, CallStatus.SUCCEEDED)

    reconcile(job)

    completed = job.events.get(kind="completed")
    assert completed.data["encoder"] == "libx264"
    assert completed.data["render_seconds"] > 0


def test_progress_comes_from_the_worker_record_and_never_goes_backwards(executor, project, clip, eager_checks):
    job = ExportJobFactory(project=project, status=ExportStatus.PROCESSING, call_id="local-" + "a" * 32)
    store = object_store()
    now = timezone.now()

    def write(percent, seconds):
        record = {
            "percent": percent,
            "stage": "rendering",
            "message": f"{percent}%",
            "call_id": job.call_id,
            "worker_time": (now + timedelta(seconds=seconds)).isoformat(),
        }
        store.write_bytes(job_key(str(job.pk), "progress.json"), json.dumps(record).encode())

    write(40, 1)
    assert reconcile(job) is Outcome.PROGRESSED
    job.refresh_from_db()
    assert (job.progress, job.message) == (40, "40%")
    write(12, 2)  # a preempted call re-ran and its record restarted
    reconcile(job)
    job.refresh_from_db()
    assert (job.progress, job.message) == (40, "12%")
    write(100, 3)  # 100 only once finalized
    reconcile(job)
    job.refresh_from_db()
    assert job.progress == 99


def test_a_running_call_is_never_condemned_however_old_its_heartbeat(executor, project, long_clip, eager_checks):
    job = start(project, long_clip, end=10)
    executor_says(job, CallStatus.RUNNING)
    ExportJob.objects.filter(pk=job.pk).update(heartbeat_seen_at=timezone.now() - THREE_HOURS)
    later = timezone.now() + THREE_HOURS
    for _ in range(3):
        assert reconcile(job, now=later) in (Outcome.UNCHANGED, Outcome.PROGRESSED)
    job.refresh_from_db()
    assert job.status == ExportStatus.PROCESSING


def test_an_unknown_call_without_result_is_lost_only_after_the_stale_window(executor, project, eager_checks):
    job = ExportJobFactory(project=project, status=ExportStatus.PROCESSING, call_id="local-" + "b" * 32)
    ExportJob.objects.filter(pk=job.pk).update(heartbeat_seen_at=timezone.now() - timedelta(minutes=30))
    assert reconcile(job) is Outcome.UNCHANGED
    ExportJob.objects.filter(pk=job.pk).update(heartbeat_seen_at=timezone.now() - timedelta(minutes=61))
    assert reconcile(job) is Outcome.LOST
    job.refresh_from_db()
    assert (job.status, job.error_reason) == (ExportStatus.ERROR, ErrorReason.LOST)
    assert "no heartbeat for 60 minutes" in job.error_message


def test_the_functions_time_limit_becomes_timed_out(executor, project, long_clip, eager_checks, settings):
    settings.LOCAL_EXECUTOR_TIME_LIMIT_SECONDS = 1
    executor.inner.time_limit_seconds = 1
    job = start(project, long_clip, end=10)
    job = reconcile_until_finished(job)
    assert (job.status, job.error_reason) == (ExportStatus.ERROR, ErrorReason.TIMED_OUT)


def test_an_expired_call_with_a_stored_result_is_finalized(executor, project, clip, eager_checks):
    executor.inner.result_ttl_seconds = 0.2
    job = start(project, clip)
    executor_says(job, CallStatus.EXPIRED)
    assert reconcile(job) is Outcome.COMPLETED
    assert WorkingVideo.objects.filter(export_job=job).exists()


def test_an_expired_call_without_a_result_is_lost_after_the_window(executor, project, clip, eager_checks):
    executor.inner.result_ttl_seconds = 0.2
    job = start(project, clip)
    executor_says(job, CallStatus.EXPIRED)
    object_store().delete(job_key(str(job.pk), "result.json"))
    assert reconcile(job) in (Outcome.UNCHANGED, Outcome.PROGRESSED)
    assert reconcile(job, now=timezone.now() + THREE_HOURS) is Outcome.LOST


def test_a_pending_job_adopts_the_call_id_its_worker_wrote_and_is_never_spawned_twice(
    executor, project, clip, eager_checks
):
    executor.fault = "lose_spawn_reply"
    job = start(project, clip)
    executor.fault = None
    assert (job.status, job.call_id) == (ExportStatus.PENDING, "")
    assert job.events.filter(kind="spawn_unconfirmed").exists()

    job = reconcile_until_finished(job)

    assert job.status == ExportStatus.COMPLETE
    assert job.call_id.startswith("local-")
    assert job.events.filter(kind="call_id_adopted").count() == 1
    assert executor.calls["spawn"] == 1


def test_a_pending_job_that_never_started_is_lost_after_the_window(executor, project, eager_checks):
    job = ExportJobFactory(project=project)
    assert reconcile(job) is Outcome.UNCHANGED
    assert reconcile(job, now=timezone.now() + THREE_HOURS) is Outcome.LOST


def test_cancel_reaches_the_executor_and_is_confirmed(executor, project, long_clip, eager_checks):
    job = start(project, long_clip, end=10)
    started = executor_says(job, CallStatus.RUNNING)
    assert started
    services.cancel_export(job)
    job.refresh_from_db()
    assert job.cancel_requested_at and job.status == ExportStatus.PROCESSING
    job = reconcile_until_finished(job, timeout=30)
    assert job.status == ExportStatus.CANCELLED
    assert not WorkingVideo.objects.filter(export_job=job).exists()
    call_dir = executor.inner.call_dir(job.call_id)
    worker_group = json.loads((call_dir / "started.json").read_text())["worker_pgid"]
    wait_for(lambda: not group_members(worker_group), timeout=10, what="the worker to be gone")


def test_a_completion_that_beats_the_cancel_wins_and_says_so(executor, project, clip, eager_checks):
    job = start(project, clip)
    executor_says(job, CallStatus.SUCCEEDED)
    services.cancel_export(job)
    assert reconcile(job) is Outcome.COMPLETED
    job.refresh_from_db()
    assert job.status == ExportStatus.COMPLETE
    assert job.events.last().message == "The export finished before the cancel reached it."


def test_a_call_terminated_without_a_cancel_request_is_failed_not_cancelled(executor, project, long_clip, eager_checks):
    job = start(project, long_clip, end=10)
    executor_says(job, CallStatus.RUNNING)
    executor.inner.cancel(job.call_id)  # the platform killed it; nobody asked
    job = reconcile_until_finished(job, timeout=30)
    assert (job.status, job.error_reason, job.error_message) == (
        ExportStatus.ERROR,
        ErrorReason.FAILED,
        "Stopped by the executor.",
    )


def test_a_worker_error_becomes_a_failed_job_with_its_message(executor, project, clip, eager_checks):
    clip.media.storage.delete(clip.media.name)  # the worker will find no input
    job = reconcile_until_finished(start(project, clip))
    assert (job.status, job.error_reason) == (ExportStatus.ERROR, ErrorReason.FAILED)
    assert "No object" in job.error_message


def test_a_definite_spawn_refusal_is_spawn_failed(executor, project, clip):
    executor.fault = "refuse_spawn"
    job = start(project, clip)
    assert (job.status, job.error_reason, job.error_message) == (
        ExportStatus.ERROR,
        ErrorReason.SPAWN_FAILED,
        "injected: the function is not deployed",
    )
    assert executor.calls["spawn"] == 1


def test_a_cancel_on_a_pending_job_is_honoured_once_its_call_id_is_known(executor, project, long_clip, eager_checks):
    executor.fault = "lose_spawn_reply"
    job = start(project, long_clip, end=10)
    executor.fault = None
    services.cancel_export(job)
    assert executor.calls["cancel"] == 0  # no call id to cancel yet

    job = reconcile_until_finished(job, timeout=60)

    assert job.events.filter(kind="call_id_adopted").count() == 1
    assert executor.calls["cancel"] >= 1
    assert job.status == ExportStatus.CANCELLED
    assert executor.calls["spawn"] == 1

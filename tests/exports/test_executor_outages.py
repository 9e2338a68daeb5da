"""An unavailable or hanging executor changes nothing, costs a request about a second, and opens the breaker."""

import time

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from exports import reconcile
from exports.executor import get_executor
from exports.models import ExportJob, ExportStatus, WorkingVideo
from modal_jobs.executors import CallStatus

from ..helpers import start
from ..processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def snapshot(job):
    """What an outage must not change (progress may still move: it comes from the store, not the executor)."""
    return ExportJob.objects.filter(pk=job.pk).values("status", "error_reason", "call_id", "finished_at").get()


@pytest.mark.parametrize("fault", ["down", "hang"])
def test_an_outage_changes_nothing_and_requests_stay_fast_then_jobs_resolve(
    fault, executor, owner_client, project, clip, eager_checks
):
    job = start(project, clip)
    wait_for(lambda: executor.inner.poll(job.call_id).status is not CallStatus.RUNNING, what="the call to finish")
    executor.fault = fault
    before = snapshot(job)
    url = reverse("exports:api_detail", args=[job.pk])

    for _ in range(4):
        started = time.monotonic()
        response = owner_client.get(url)
        assert time.monotonic() - started < 5
        assert response.status_code == 200
        assert response.json()["job"]["status"] == "processing"
    assert get_executor().breaker_open
    assert snapshot(job) == before
    assert not WorkingVideo.objects.filter(export_job=job).exists()

    with pytest.raises(CommandError, match="unavailable for 1 job"):
        call_command("reconcile_exports", "--concurrency", "1", stdout=open("/dev/null", "w"))
    assert snapshot(job) == before

    executor.release()
    time.sleep(0.6)  # the breaker's cooldown in these tests
    wait_for(lambda: owner_client.get(url).json()["job"]["status"] == "complete", what="the job to resolve")
    assert ExportJob.objects.get(pk=job.pk).status == ExportStatus.COMPLETE


def test_the_breaker_fails_fast_while_open(executor, project, clip, eager_checks):
    job = start(project, clip)
    executor.fault = "down"
    for _ in range(3):
        reconcile.reconcile_job(job, trigger="view")
    calls = executor.calls["poll"]
    assert reconcile.reconcile_job(job, trigger="view") is reconcile.Outcome.UNAVAILABLE
    assert executor.calls["poll"] == calls  # not even asked

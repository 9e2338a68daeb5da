"""SIGKILL of the worker: the job fails saying how it died, and a retry runs to completion."""

import json
import os
import signal

import pytest

from exports import services
from exports.models import ErrorReason, ExportStatus, WorkingVideo
from modal_jobs.executors import CallStatus

from ..processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def reconcile_until_finished(job, timeout=120):
    def finished():
        services.reconcile_job(job, trigger="view")
        job.refresh_from_db()
        return job.status not in ("pending", "processing")

    wait_for(finished, timeout=timeout, what="the job to end")
    return job


def test_a_killed_worker_fails_the_job_with_how_it_died_and_retry_works(
    executor, project, long_clip, eager_checks, monkeypatch
):
    params = {"clips": [{"clip_id": long_clip.pk, "start": 0, "end": 10}]}
    job = services.start_export(owner=project.owner, project=project, kind="multi_clip", params=params)
    started = executor.inner.call_dir(job.call_id) / "started.json"
    wait_for(started.exists, what="the worker to start")
    wait_for(lambda: executor.inner.poll(job.call_id).status is CallStatus.RUNNING, what="running")

    os.kill(json.loads(started.read_text())["worker_pid"], signal.SIGKILL)
    job = reconcile_until_finished(job)

    assert (job.status, job.error_reason) == (ExportStatus.ERROR, ErrorReason.FAILED)
    assert job.error_message == "The worker was killed by SIGKILL without a result."

    monkeypatch.setenv("EXPORTS_X264_PRESET", "ultrafast")
    retried = reconcile_until_finished(services.retry_export(job))
    assert retried.status == ExportStatus.COMPLETE
    assert WorkingVideo.objects.filter(export_job=retried).count() == 1

"""SIGKILL of the worker: the job fails saying how it died, and a retry runs to completion."""

import json
import os
import signal

import pytest

from exports import services
from exports.models import ErrorReason, ExportStatus, WorkingVideo
from modal_jobs.executors import CallStatus

from ..helpers import reconcile_until_finished, start
from ..processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_killed_worker_fails_the_job_with_how_it_died_and_retry_works(
    executor, project, long_clip, eager_checks, monkeypatch
):
    job = start(project, long_clip, end=10)
    started = executor.inner.call_dir(job.call_id) / "started.json"
    wait_for(started.exists, what="the worker to start")
    wait_for(lambda: executor.inner.poll(job.call_id).status is CallStatus.RUNNING, what="running")

    os.kill(json.loads(started.read_text())["worker_pid"], signal.SIGKILL)
    job = reconcile_until_finished(job, timeout=120)

    assert (job.status, job.error_reason) == (ExportStatus.ERROR, ErrorReason.FAILED)
    assert job.error_message == "The worker was killed by SIGKILL without a result."

    monkeypatch.setenv("EXPORTS_X264_PRESET", "ultrafast")
    retried = reconcile_until_finished(services.retry_export(job), timeout=120)
    assert retried.status == ExportStatus.COMPLETE
    assert WorkingVideo.objects.filter(export_job=retried).count() == 1

"""The store failing while the worker uploads: the job fails with the reason and no WorkingVideo points at nothing."""

import pytest

from exports import reconcile
from exports.models import ErrorReason, ExportStatus, WorkingVideo
from exports.storage import object_store
from modal_jobs.executors import CallStatus
from modal_jobs.records import job_key

from ..helpers import reconcile_until_finished, start
from ..processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_upload_that_fails_ends_the_job_as_failed_with_the_reason(executor, project, clip, eager_checks):
    job = start(project, clip)
    # A folder where the output object must go: the store cannot write it (a real OS error, even as root).
    object_store().path(job_key(str(job.pk), "output.mp4")).mkdir(parents=True)

    reconcile_until_finished(job, timeout=60)

    assert (job.status, job.error_reason) == (ExportStatus.ERROR, ErrorReason.FAILED)
    assert "output.mp4" in job.error_message
    assert not WorkingVideo.objects.filter(export_job=job).exists()


def test_a_success_whose_output_is_missing_is_not_finalized(executor, project, clip, eager_checks):
    job = start(project, clip)
    wait_for(lambda: executor.inner.poll(job.call_id).status is not CallStatus.RUNNING, what="the call to end")
    object_store().delete(job_key(str(job.pk), "output.mp4"))  # lost from the bucket

    reconcile.reconcile_job(job, trigger="view")

    job.refresh_from_db()
    assert (job.status, job.error_message) == (
        ExportStatus.ERROR,
        "The worker reported success but its output is missing.",
    )
    assert not WorkingVideo.objects.filter(export_job=job).exists()

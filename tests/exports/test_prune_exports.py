"""prune_exports deletes only what finished jobs no longer need, and never what a working video plays."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from exports.models import ErrorReason, ExportJob, ExportStatus, WorkingVideo
from exports.storage import object_store
from modal_jobs.records import job_key

from ..factories import ExportJobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def own_store(settings, tmp_path):
    """A store of this test's own, so objects other tests left behind are not counted as orphans."""
    settings.MEDIA_ROOT = tmp_path / "media"


ALL = ("progress.json", "progress.log", "result.json", "output.mp4")


def finished_job(project, status, *, days_ago, **fields):
    job = ExportJobFactory(
        project=project, kind="overlay" if status == "complete" else "multi_clip", status=status, **fields
    )
    ExportJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=days_ago))
    store = object_store()
    for name in ALL:
        store.write_bytes(job_key(str(job.pk), name), b"x")
    return job


def present(job):
    store = object_store()
    return {name for name in ALL if store.size(job_key(str(job.pk), name)) is not None}


def prune(*arguments):
    output = io.StringIO()
    call_command("prune_exports", "--json", *arguments, stdout=output)
    return json.loads(output.getvalue())


def test_it_deletes_old_records_and_failed_outputs_but_never_a_working_videos_object(project):
    complete = finished_job(project, ExportStatus.COMPLETE, days_ago=40, progress=100)
    WorkingVideo.objects.create(
        project=project,
        export_job=complete,
        media=job_key(str(complete.pk), "output.mp4"),
        duration=1,
        width=2,
        height=2,
        size=1,
    )
    failed = finished_job(project, ExportStatus.ERROR, days_ago=40, error_reason=ErrorReason.FAILED)
    # A cancelled job whose output a working video plays (inconsistent data): the guard still keeps it.
    guarded = finished_job(ExportJobFactory().project, ExportStatus.CANCELLED, days_ago=40)
    WorkingVideo.objects.create(
        project=guarded.project,
        export_job=guarded,
        media=job_key(str(guarded.pk), "output.mp4"),
        duration=1,
        width=2,
        height=2,
        size=1,
    )
    recent = finished_job(ExportJobFactory().project, ExportStatus.CANCELLED, days_ago=1)
    active = ExportJobFactory(project=project, kind="framing_ai", status=ExportStatus.PROCESSING)
    object_store().write_bytes(job_key(str(active.pk), "progress.json"), b"x")

    report = prune("--retention-days", "30")

    assert present(complete) == {"output.mp4"}
    assert present(failed) == set()
    assert present(recent) == set(ALL)
    assert object_store().size(job_key(str(active.pk), "progress.json")) == 1
    assert present(guarded) == {"output.mp4"}
    assert report["kept_in_use"] == [job_key(str(guarded.pk), "output.mp4")]
    assert report["jobs_pruned"] == 3
    assert prune("--retention-days", "30")["deleted"] == []  # idempotent: pruned jobs are not looked at again


def test_a_dry_run_deletes_nothing(project):
    failed = finished_job(project, ExportStatus.ERROR, days_ago=40, error_reason=ErrorReason.FAILED)
    report = prune("--retention-days", "30", "--dry-run")
    assert len(report["deleted"]) == 4
    assert present(failed) == set(ALL)
    assert ExportJob.objects.get(pk=failed.pk).records_pruned_at is None


def test_it_reports_orphans_and_working_videos_whose_object_is_missing(project):
    object_store().write_bytes("exports/00000000-0000-0000-0000-00000000dead/output.mp4", b"x")
    job = ExportJobFactory(project=project, status=ExportStatus.COMPLETE, progress=100)
    video = WorkingVideo.objects.create(
        project=project, export_job=job, media=job_key(str(job.pk), "output.mp4"), duration=1, width=2, height=2, size=1
    )
    report = prune()
    assert report["orphans"] == ["exports/00000000-0000-0000-0000-00000000dead/output.mp4"]
    assert report["videos_missing_objects"] == [video.pk]


def test_chunks_a_crashed_chunked_render_left_are_deleted_with_its_records(project):
    job = finished_job(project, ExportStatus.ERROR, days_ago=40, error_reason=ErrorReason.FAILED)
    store = object_store()
    chunks = [job_key(str(job.pk), f"chunks/000{index}-abc.mp4") for index in range(2)]
    for key in chunks:
        store.write_bytes(key, b"x")

    report = prune("--retention-days", "30")

    assert set(chunks) <= set(report["deleted"])
    assert [store.size(key) for key in chunks] == [None, None]

"""The database itself refuses a second active export per (project, kind)."""

import threading

import pytest
from django.db import IntegrityError, close_old_connections, connection, transaction

from exports.models import ErrorReason, ExportJob, ExportKind, ExportStatus

from ..factories import ExportJobFactory, ProjectFactory

pytestmark = pytest.mark.database


@pytest.mark.django_db
@pytest.mark.parametrize("first_status", [ExportStatus.PENDING, ExportStatus.PROCESSING])
@pytest.mark.parametrize("second_status", [ExportStatus.PENDING, ExportStatus.PROCESSING])
def test_it_refuses_a_second_active_job_for_the_same_project_and_kind(first_status, second_status):
    first = ExportJobFactory(status=first_status)
    with pytest.raises(IntegrityError), transaction.atomic():
        ExportJobFactory(project=first.project, kind=first.kind, status=second_status)
    assert ExportJob.objects.filter(project=first.project).count() == 1


@pytest.mark.django_db
def test_it_allows_active_jobs_of_other_kinds_and_other_projects():
    first = ExportJobFactory(kind=ExportKind.MULTI_CLIP)
    ExportJobFactory(project=first.project, kind=ExportKind.OVERLAY)
    ExportJobFactory(project=first.project, kind=ExportKind.FRAMING_AI)
    ExportJobFactory(project=ProjectFactory(owner=first.owner), kind=ExportKind.MULTI_CLIP)
    assert ExportJob.objects.active().count() == 4


@pytest.mark.django_db
@pytest.mark.parametrize(
    "finished",
    [
        {"status": ExportStatus.COMPLETE, "progress": 100},
        {"status": ExportStatus.CANCELLED},
        {"status": ExportStatus.ERROR, "error_reason": ErrorReason.FAILED},
    ],
)
def test_it_allows_a_new_job_once_the_previous_one_finished(finished):
    old = ExportJobFactory(**finished)
    new = ExportJobFactory(project=old.project, kind=old.kind)
    assert list(ExportJob.objects.active()) == [new]


@pytest.mark.django_db
def test_a_job_that_finishes_frees_the_slot_for_a_new_one():
    job = ExportJobFactory(status=ExportStatus.PROCESSING)
    ExportJob.objects.filter(pk=job.pk).update(status=ExportStatus.COMPLETE, progress=100)
    ExportJobFactory(project=job.project, kind=job.kind)
    assert ExportJob.objects.filter(project=job.project, kind=job.kind).count() == 2


@pytest.mark.django_db
def test_an_error_needs_a_reason_and_only_errors_have_one():
    with pytest.raises(IntegrityError), transaction.atomic():
        ExportJobFactory(status=ExportStatus.ERROR, error_reason="")
    with pytest.raises(IntegrityError), transaction.atomic():
        ExportJobFactory(status=ExportStatus.PROCESSING, error_reason=ErrorReason.LOST)


@pytest.mark.django_db
def test_progress_stays_within_0_and_100():
    job = ExportJobFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        ExportJob.objects.filter(pk=job.pk).update(progress=101)


@pytest.mark.django_db
def test_active_returns_only_pending_and_processing_jobs():
    pending = ExportJobFactory(status=ExportStatus.PENDING, kind=ExportKind.MULTI_CLIP)
    processing = ExportJobFactory(project=pending.project, status=ExportStatus.PROCESSING, kind=ExportKind.OVERLAY)
    ExportJobFactory(project=pending.project, status=ExportStatus.COMPLETE, progress=100)
    ExportJobFactory(project=pending.project, status=ExportStatus.CANCELLED)
    assert set(ExportJob.objects.active()) == {pending, processing}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_inserts_leave_exactly_one_active_job():
    """Twenty connections race to insert; the partial unique index lets exactly one win."""
    project = ProjectFactory()
    barrier = threading.Barrier(20)
    outcomes = []

    def insert():
        try:
            barrier.wait()
            with transaction.atomic():
                ExportJob.objects.create(
                    owner=project.owner, project=project, kind=ExportKind.MULTI_CLIP, backend="local"
                )
            outcomes.append("created")
        except IntegrityError:
            outcomes.append("refused")
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=insert) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] + ["refused"] * 19
    assert ExportJob.objects.filter(project=project).count() == 1


@pytest.mark.django_db
def test_a_deleted_projects_jobs_are_hidden_from_their_owner_but_still_counted_as_started():
    shown = ExportJobFactory()
    hidden = ExportJobFactory(project=ProjectFactory(owner=shown.owner))
    hidden.project.deleted_at = hidden.created_at
    hidden.project.save()

    assert list(ExportJob.objects.owned_by(shown.owner)) == [shown]
    assert set(ExportJob.objects.started_by(shown.owner)) == {shown, hidden}
    assert [job.pk for job in ExportJob.objects.tray_of(shown.owner)] == [shown.pk]


def test_the_web_apps_export_kinds_are_the_worker_sides_one_list():
    from modal_jobs.kinds import KINDS

    assert tuple(ExportKind.values) == KINDS

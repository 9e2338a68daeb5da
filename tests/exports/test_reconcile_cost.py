"""What a reconciliation costs: no query for checks not due, one claim for both, executor calls in flight together."""

import threading
import uuid

import pytest
from django.utils import timezone

from exports import reconcile
from exports.executor import Budget, get_executor
from exports.models import ExportJob, ExportStatus, Trigger
from exports.reconcile import Outcome
from projects.models import Project

from ..factories import ExportJobFactory

pytestmark = pytest.mark.django_db(transaction=True)


def processing_job(project=None, **fields):
    """A processing job whose call the executor does not know (it answers UNKNOWN, which is an answer)."""
    options = {"project": project} if project else {}
    return ExportJobFactory(
        status=ExportStatus.PROCESSING, call_id=f"local-{uuid.uuid4().hex}", started_at=timezone.now(),
        **options, **fields,
    )  # fmt: skip


def test_a_look_before_any_check_is_due_costs_no_query(executor, django_assert_num_queries):
    now = timezone.now()
    job = processing_job(progress_checked_at=now, executor_checked_at=now)
    with django_assert_num_queries(0):
        assert reconcile.reconcile_job(job, trigger=Trigger.VIEW) is Outcome.UNCHANGED
    assert executor.calls["poll"] == 0


def test_one_update_claims_both_checks_when_both_are_due(executor, django_assert_num_queries):
    job = processing_job()
    with django_assert_num_queries(1):
        assert reconcile.reconcile_job(job, trigger=Trigger.VIEW) is Outcome.UNCHANGED
    assert executor.calls["poll"] == 1
    stored = ExportJob.objects.get(pk=job.pk)
    assert stored.progress_checked_at is not None
    assert stored.progress_checked_at == stored.executor_checked_at


def test_checks_claimed_meanwhile_by_another_looker_are_not_done_again(executor):
    job = processing_job()
    now = timezone.now()
    ExportJob.objects.filter(pk=job.pk).update(progress_checked_at=now, executor_checked_at=now)  # another process
    assert reconcile.reconcile_job(job, trigger=Trigger.VIEW) is Outcome.UNCHANGED  # `job` still says never checked
    assert executor.calls["poll"] == 0
    assert ExportJob.objects.get(pk=job.pk).executor_checked_at == now


def test_only_the_due_check_is_claimed_when_the_other_is_not(executor, settings):
    settings.EXPORTS_EXECUTOR_INTERVAL_SECONDS = 3600
    recently = timezone.now()
    job = processing_job(executor_checked_at=recently)
    reconcile.reconcile_job(job, trigger=Trigger.VIEW)
    stored = ExportJob.objects.get(pk=job.pk)
    assert stored.progress_checked_at > recently
    assert stored.executor_checked_at == recently
    assert executor.calls["poll"] == 0


def test_a_page_asks_the_executor_about_all_its_due_jobs_at_once(executor, owner):
    """Five calls must be in flight together to get through the rendezvous; one after another, none would."""
    jobs = [processing_job(Project.objects.create(owner=owner, name=f"P{n}")) for n in range(5)]
    executor.fault, executor.rendezvous = "rendezvous", threading.Barrier(5)
    checked = reconcile.reconcile_jobs(
        ExportJob.objects.filter(pk__in=[job.pk for job in jobs]), trigger=Trigger.VIEW, budget=Budget(10)
    )
    assert sorted(outcome for _, outcome in checked) == [Outcome.UNCHANGED] * 5
    assert executor.calls["poll"] == 5


def test_polls_that_miss_the_deadline_are_unavailable_and_count_towards_the_breaker(executor):
    jobs = [processing_job() for _ in range(3)]
    executor.fault = "hang"
    answers = get_executor().poll_many([job.call_id for job in jobs[:2]], budget=Budget(0.3))
    assert all("did not answer poll" in str(answers[job.call_id]) for job in jobs[:2])
    assert not get_executor().breaker_open  # two failures; it opens at three
    get_executor().poll_many([jobs[2].call_id], budget=Budget(0.3))
    assert get_executor().breaker_open
    executor.release()


def test_polls_with_no_budget_left_ask_nothing(executor):
    job = processing_job()
    answers = get_executor().poll_many([job.call_id], budget=Budget(0))
    assert "No time left" in str(answers[job.call_id])
    assert executor.calls["poll"] == 0

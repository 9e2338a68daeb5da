"""
Races that must end with exactly one winner, on SQLite and again on PostgreSQL:
twenty reconciliations of one finished call, twenty starts of one export.
"""

import threading

import pytest
from django.db import connection

from exports import reconcile, services
from exports.models import ExportJob, ExportJobEvent, ExportStatus, Trigger, WorkingVideo

from ..helpers import start

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]

RACERS = 20


def race(function, count=RACERS):
    """Run `function` in `count` threads released at the same instant; return results or exceptions."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(index):
        try:
            barrier.wait()
            results[index] = function()
        except Exception as error:  # collected and asserted on by the test
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_twenty_reconciliations_of_a_finished_call_finalize_it_once(finished_call, owner_broadcasts, mailoutbox):
    job = finished_call

    outcomes = race(
        lambda: reconcile.reconcile_job(
            ExportJob.objects.select_related("project").get(pk=job.pk), trigger=Trigger.COMMAND
        )
    )

    assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)], outcomes
    assert outcomes.count(reconcile.Outcome.COMPLETED) == 1
    assert WorkingVideo.objects.filter(export_job_id=job.pk).count() == 1
    assert ExportJobEvent.objects.filter(job_id=job.pk, kind="completed").count() == 1
    completions = [message for message in owner_broadcasts.drain() if message["job"]["status"] == "complete"]
    assert len(completions) == 1
    assert ExportJob.objects.get(pk=job.pk).status == ExportStatus.COMPLETE
    assert len(mailoutbox) == 1, "the owner, away, is told once"


def test_twenty_concurrent_starts_spawn_once(executor, project, clip):
    results = race(lambda: start(project, clip))

    created = [result for result in results if isinstance(result, ExportJob)]
    refused = [result for result in results if isinstance(result, services.AlreadyRunning)]
    assert len(created) == 1 and len(refused) == RACERS - 1, results
    assert {error.job.pk for error in refused} == {created[0].pk}
    assert executor.calls["spawn"] == 1
    assert ExportJob.objects.filter(project=project).count() == 1

"""
Broadcasts read the job when they are sent, after commit. A change to a running job whose broadcast
finds the job already finished must not repeat the finish: the finishing transition sends that itself.
"""

import pytest
from django.db import transaction

from exports import services
from exports.models import ExportJobEvent, ExportStatus, Trigger

from ..factories import ExportJobFactory

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]  # on_commit callbacks run


@pytest.fixture
def running_job(project):
    return ExportJobFactory(project=project, status=ExportStatus.PROCESSING)  # no call id: nothing to ask


def test_a_change_to_a_running_job_is_broadcast_with_its_new_state(running_job, owner_broadcasts):
    services.cancel_export(running_job, trigger=Trigger.VIEW)

    sent = [message["job"] for message in owner_broadcasts.drain()]
    assert [(job["status"], job["cancel_requested"]) for job in sent] == [("processing", True)]


def test_a_change_whose_job_finished_before_its_broadcast_went_out_is_not_sent_twice(running_job, owner_broadcasts):
    with transaction.atomic():  # both broadcasts wait for this commit, then read the cancelled job
        services.cancel_export(running_job, trigger=Trigger.VIEW)
        services.transition(
            running_job, ExportStatus.CANCELLED, trigger=Trigger.COMMAND, event=ExportJobEvent.Kind.CANCELLED
        )

    sent = [message["job"] for message in owner_broadcasts.drain()]
    assert [job["status"] for job in sent] == ["cancelled"]

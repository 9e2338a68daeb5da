"""The owner hears once that an export ended: on an open page, or by e-mail while away (unless turned off)."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from exports import notices, services
from exports.models import ExportJob, ExportStatus, NoticePreference, Trigger
from exports.reconcile import reconcile_job
from modal_jobs.executors import CallStatus
from modal_jobs.records import OUTPUT, job_key

from ..factories import ExportJobFactory
from ..helpers import send_worker_event, start
from ..processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return tmp_path / "media"


def finished_by_its_worker(job, media, **result):
    """The job's worker stored its output and result and said so with a signed event."""
    output = media / job_key(str(job.pk), OUTPUT)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(b"ok")
    result = {"status": "success", "output_key": job_key(str(job.pk), OUTPUT), "duration": 12.5, "width": 640,
              "height": 360, "size": 2} | result  # fmt: skip
    return send_worker_event(job.pk, {"type": "result", "job_id": str(job.pk), "result": result})


@pytest.fixture
def job(project):
    return ExportJobFactory(project=project, status=ExportStatus.PROCESSING, call_id="local-" + "a" * 32)


def test_an_owner_who_is_away_gets_one_email_naming_the_project_the_export_its_length_and_a_link(
    job, media, mailoutbox, settings
):
    settings.SITE_URL = "https://exports.example.com"
    finished_by_its_worker(job, media)
    finished_by_its_worker(job, media)  # the same news twice

    [mail] = mailoutbox
    assert mail.to == [job.owner.email]
    assert job.project.name in mail.subject and "ready" in mail.subject
    assert "12.5 seconds, 640×360" in mail.body
    assert f"https://exports.example.com/projects/{job.project.pk}/" in mail.body
    assert ExportJob.objects.get(pk=job.pk).notice_sent_at is not None


def test_an_owner_with_a_page_open_is_told_there_not_by_email(job, media, mailoutbox):
    notices.seen_on_a_socket(job.owner_id)
    finished_by_its_worker(job, media)

    assert mailoutbox == []
    assert ExportJob.objects.get(pk=job.pk).notice_sent_at is not None  # the page's notice was the notice


def test_an_owner_who_turned_emails_off_gets_none(job, media, mailoutbox, owner_client):
    response = owner_client.post(reverse("exports:notice_preference"), {})  # the box unticked
    assert response.status_code == 302
    assert NoticePreference.objects.get(user=job.owner).email_when_away is False
    assert 'name="email_when_away">' in owner_client.get(reverse("exports:history")).content.decode()  # unticked

    finished_by_its_worker(job, media)
    assert mailoutbox == []


def test_a_failed_export_is_told_with_its_plain_reason_and_a_cancelled_one_not_at_all(project, media, mailoutbox):
    failed = ExportJobFactory(project=project, status=ExportStatus.PROCESSING, call_id="local-" + "b" * 32)
    cancelled = ExportJobFactory(project=project, kind="overlay", status=ExportStatus.PROCESSING)

    finished_by_its_worker(failed, media, status="error", message="Clip 3 has no video stream.")
    services.transition(cancelled, ExportStatus.CANCELLED, trigger=Trigger.VIEW, event="cancelled")

    [mail] = mailoutbox
    assert "failed" in mail.subject
    assert ExportJob.objects.get(pk=failed.pk).error_for_user in mail.body


def test_a_notice_a_crash_left_untold_is_sent_by_the_next_reconcile_exports_once(job, mailoutbox):
    ExportJob.objects.filter(pk=job.pk).update(status=ExportStatus.COMPLETE, finished_at=timezone.now())
    long_ago = ExportJobFactory(project=job.project, kind="overlay", status=ExportStatus.ERROR,
                                error_reason="failed", finished_at=timezone.now() - timedelta(days=2))  # fmt: skip

    call_command("reconcile_exports", stdout=open("/dev/null", "w"))
    call_command("reconcile_exports", stdout=open("/dev/null", "w"))

    assert len(mailoutbox) == 1
    assert ExportJob.objects.get(pk=long_ago.pk).notice_sent_at is None  # too late to be news


def test_with_the_final_event_lost_the_next_look_finishes_the_job_and_tells_the_owner_once(
    executor, project, clip, eager_checks, settings, mailoutbox
):
    """The backend was down when the worker sent its result: nothing is lost but time."""
    settings.EXPORTS_EVENTS_URL = "http://127.0.0.1:9"  # nothing listens: every event is lost
    job = start(project, clip)
    wait_for(lambda: executor.inner.poll(job.call_id).status is CallStatus.SUCCEEDED, timeout=60, what="the call")
    assert ExportJob.objects.get(pk=job.pk).status == ExportStatus.PROCESSING

    reconcile_job(ExportJob.objects.get(pk=job.pk), trigger=Trigger.VIEW)
    reconcile_job(ExportJob.objects.get(pk=job.pk), trigger=Trigger.VIEW)

    assert ExportJob.objects.get(pk=job.pk).status == ExportStatus.COMPLETE
    assert len(mailoutbox) == 1


def test_an_owner_without_an_address_gets_no_mail_and_the_page_says_why(job, media, mailoutbox, owner_client):
    job.owner.email = ""
    job.owner.save()
    finished_by_its_worker(job, media)

    assert mailoutbox == []
    assert "no e-mail address" in owner_client.get(reverse("exports:history")).content.decode()
    assert NoticePreference.objects.filter(user=job.owner).count() == 0

"""A job's JSON words its state once (display_message, controls), and the server's bars draw exactly that."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from exports import serializers
from exports.models import TERMINAL_STATUSES, ErrorReason, ExportJob, ExportStatus, WorkingVideo
from exports.serializers import CONTROLS, serialize_job

from ..factories import ExportJobFactory

pytestmark = pytest.mark.django_db


def with_video(job):
    WorkingVideo.objects.create(
        project=job.project, export_job=job, media="out.mp4", duration=3.0, width=320, height=180, size=1000
    )
    return job


def retried(job):
    job.retried_as = ExportJobFactory(
        project=job.project, kind="overlay", status=ExportStatus.CANCELLED, finished_at=timezone.now()
    )
    job.save()
    return job


STATES = {
    "pending, nothing said yet": (dict(status=ExportStatus.PENDING), "Starting…", ["cancel"]),
    "queued": (
        dict(status=ExportStatus.PENDING, stage="queued", message="Queued: 2 exports ahead"),
        "Queued: 2 exports ahead",
        ["cancel"],
    ),
    "rendering, in the worker's words": (
        dict(status=ExportStatus.PROCESSING, progress=40, stage="rendering", message="Rendering clip 2 of 3"),
        "Rendering clip 2 of 3",
        ["cancel"],
    ),
    "a stage and no message": (dict(status=ExportStatus.PROCESSING, stage="uploading"), "uploading", ["cancel"]),
    "cancel requested": (
        dict(status=ExportStatus.PROCESSING, message="Rendering", cancel_requested_at=timezone.now()),
        "Cancelling…",
        ["cancelling"],
    ),
    "complete": (dict(status=ExportStatus.COMPLETE, progress=100), "Done.", ["download", "open", "dismiss"]),
    "failed": (
        dict(status=ExportStatus.ERROR, error_reason=ErrorReason.TIMED_OUT, error_message="ffmpeg: killed"),
        ErrorReason.TIMED_OUT.for_user(None),
        ["retry", "dismiss"],
    ),
    "failed and retried": (
        dict(status=ExportStatus.ERROR, error_reason=ErrorReason.LOST),
        ErrorReason.LOST.for_user(None),
        ["dismiss"],
    ),
    "cancelled": (dict(status=ExportStatus.CANCELLED, message="Rendering"), "Cancelled.", ["retry", "dismiss"]),
}
PREPARE = {"complete": with_video, "failed and retried": retried}


def make(state, **extra):
    fields, _, _ = STATES[state]
    if fields["status"] in TERMINAL_STATUSES:
        extra["finished_at"] = timezone.now()  # in the tray for a day
    job = ExportJobFactory(**fields, **extra)
    return PREPARE.get(state, lambda job: job)(job)


def serialized(job) -> dict:
    return serialize_job(ExportJob.objects.for_serializing().get(pk=job.pk))


@pytest.mark.parametrize("state", STATES)
def test_the_json_words_each_state_and_says_which_controls_its_bar_shows(state):
    _, message, controls = STATES[state]
    job = serialized(make(state))

    assert job["display_message"] == message
    assert job["controls"] == controls
    assert job["message"] == STATES[state][0].get("message", "")  # the worker's own words stay as they were


def test_a_complete_job_whose_video_is_missing_offers_no_links():
    job = serialized(ExportJobFactory(status=ExportStatus.COMPLETE, progress=100))
    assert (job["display_message"], job["controls"]) == ("Done.", ["dismiss"])


def bars_of(html: str) -> dict[str, str]:
    """The tray's bars as the server drew them (not the <template>'s blank one), by job id."""
    tray = html.split('<ul class="tray-jobs"', 1)[1].split("</ul>", 1)[0]
    bars = re.findall(r'(<li class="export-bar[^"]*" data-job-id="([^"]+)".*?</li>)', tray, flags=re.S)
    return {job_id: bar for bar, job_id in bars}


def text_of(bar: str, role: str) -> str:
    return re.search(rf'data-role="{role}">(.*?)</span>', bar, flags=re.S).group(1)


def test_the_server_draws_each_bar_from_the_json_words_and_controls(owner_client, project, monkeypatch):
    """Drawn from the JSON, not worded again in the template: a new wording in the serializer shows on the page."""
    states = ("pending, nothing said yet", "cancel requested", "complete", "failed", "cancelled", "failed and retried")
    kinds = ("multi_clip", "framing_ai")  # one active export per project and kind: the two active ones differ
    jobs = [make(state, project=project, kind=kinds[min(number, 1)]) for number, state in enumerate(states)]
    monkeypatch.setattr(serializers, "display_message", lambda job: f"The serializer says {job.pk} <is> here")

    page = owner_client.get(reverse("projects:list")).content.decode()
    bars = bars_of(page)

    shown = {str(job.pk) for job in jobs} | {str(jobs[-1].retried_as_id)}
    assert set(bars) == shown
    for job in jobs:
        bar = bars[str(job.pk)]
        assert text_of(bar, "message") == f"The serializer says {job.pk} &lt;is&gt; here"
        assert re.findall(r'data-control="([a-z]+)"', bar) == serialized(job)["controls"]


def test_every_page_holds_the_blank_bar_with_every_control_for_the_script_to_clone(owner_client):
    page = owner_client.get(reverse("exports:history")).content.decode()

    template = re.search(r'<template id="export-bar-template">(.*?)</template>', page, flags=re.S).group(1)
    assert template.lstrip().startswith('<li class="export-bar')
    assert re.findall(r'data-control="([a-z]+)"', template) == list(CONTROLS)
    assert text_of(template, "message") == ""
    assert bars_of(page) == {}  # no job: the template is not a bar of the tray

"""What a job shows before and while it renders: its place in the queue, then the worker's time-left estimate."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from exports import services
from exports.models import ExportStatus
from exports.storage import object_store
from modal_jobs.records import job_key

from ..factories import ExportJobFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def one_worker(settings, request):
    """The real local executor with a single worker, so the second and third exports wait in its queue."""
    settings.LOCAL_EXECUTOR_MAX_WORKERS = 1
    return request.getfixturevalue("executor")


def shown(client, job) -> dict:
    return client.get(reverse("exports:api_detail", args=[job.pk])).json()["job"]


def test_exports_waiting_for_a_worker_say_queued_with_how_many_are_ahead(
    one_worker, owner_client, project, long_clip, eager_checks
):
    everything = {"clip_id": long_clip.pk, "start": 0, "end": 10}
    ring = {"start": 0, "end": 1, "x": 0.5, "y": 0.5, "radius": 0.2}
    first, second, third = (
        services.start_export(owner=project.owner, project=project, kind=kind, params=params)
        for kind, params in (
            ("multi_clip", {"clips": [everything]}),
            ("overlay", {"clip_id": long_clip.pk, "highlights": [ring]}),
            ("framing_ai", {"clip_id": long_clip.pk, "keyframes": [{"t": 0, "x": 0.5}]}),
        )
    )
    try:
        assert shown(owner_client, third)["message"] == "Queued: 1 export ahead"
        assert shown(owner_client, second)["message"] == "Queued: next to start"
        assert shown(owner_client, first)["message"] != "Queued: next to start"  # it has the worker
    finally:
        for job in (third, second, first):
            services.cancel_export(job)


def write_progress(job, *, remaining_seconds, seconds_ago: float, percent=40):
    record = {
        "percent": percent,
        "stage": "rendering",
        "message": "Rendering",
        "call_id": job.call_id,
        "worker_time": (timezone.now() - timedelta(seconds=seconds_ago)).isoformat(),
        "remaining_seconds": remaining_seconds,
    }
    object_store().write_bytes(job_key(str(job.pk), "progress.json"), json.dumps(record).encode())


def test_every_look_shows_the_workers_estimate_counted_down_to_that_moment(
    executor, owner_client, outsider_client, project, eager_checks
):
    job = ExportJobFactory(project=project, status=ExportStatus.PROCESSING, call_id="local-" + "c" * 32)
    write_progress(job, remaining_seconds=300, seconds_ago=20)

    first_page = shown(owner_client, job)["remaining_seconds"]
    a_new_page = shown(owner_client, job)["remaining_seconds"]

    assert 278 <= first_page <= 280.5  # 300 s as of 20 s ago
    assert first_page - 1 <= a_new_page <= first_page  # the same estimate at once, never a blank


@pytest.mark.parametrize("reported", [None, -5, "soon", float("inf"), True])
def test_no_estimate_or_a_nonsensical_one_shows_no_time_left(executor, owner_client, project, eager_checks, reported):
    job = ExportJobFactory(project=project, status=ExportStatus.PROCESSING, call_id="local-" + "d" * 32)
    write_progress(job, remaining_seconds=reported, seconds_ago=1)
    assert shown(owner_client, job)["remaining_seconds"] is None

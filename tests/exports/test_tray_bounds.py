"""The tray is bounded: pages, the API's list and the socket's snapshot hold TRAY_SIZE jobs, however long the day."""

import json
import re
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from exports.models import TRAY_SIZE, ExportJob, ExportStatus

from ..factories import ExportJobFactory
from .test_consumer import connect

LIMIT_BYTES = 256 * 1024
HIGHLIGHTS = [{"start": 0, "end": 1, "x": 0.5, "y": 0.5, "radius": 0.2, "color": "#FFD400"}] * 100


@pytest.fixture
def long_day(owner, project):
    """600 exports finished today with the largest params there are, and one started before them, still running."""
    now = timezone.now()
    finished = [
        ExportJob(
            owner=owner,
            project=project,
            kind="overlay",
            backend="local",
            params={"clip_id": 1, "highlights": HIGHLIGHTS},
            status=ExportStatus.COMPLETE,
            progress=100,
            finished_at=now,
        )
        for _ in range(600)
    ]
    ExportJob.objects.bulk_create(finished)
    running = ExportJobFactory(project=project, kind="multi_clip", status=ExportStatus.PROCESSING)
    ExportJob.objects.filter(pk=running.pk).update(created_at=now - timedelta(minutes=30))
    return running


@pytest.mark.django_db
def test_the_api_and_every_page_hold_a_bounded_tray_with_the_running_job(owner_client, long_day):
    """Before: 517 such jobs made every page embed 1.7 MB of tray JSON."""
    listed = owner_client.get("/api/exports/active/")
    page = owner_client.get("/projects/").content.decode()
    embedded = re.search(r'id="export-tray-jobs" type="application/json">(.*?)</script>', page).group(1)

    for raw in (listed.content, embedded.encode()):
        jobs = json.loads(raw)["jobs"] if raw is listed.content else json.loads(raw)
        assert len(raw) < LIMIT_BYTES
        assert len(jobs) == TRAY_SIZE
        assert str(long_day.pk) in {job["id"] for job in jobs}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("cursor", [None, "2000-01-01T00:00:00Z"])
async def test_the_socket_snapshot_is_bounded_even_with_an_old_cursor(owner, long_day, cursor):
    """Before: the snapshot passed the channel layer's 1 MiB and every connect ended in 1011."""
    path = "/ws/exports/" + (f"?cursor={cursor}" if cursor else "")
    socket, snapshot = await connect(owner, path=path)
    await socket.disconnect()

    assert len(json.dumps(snapshot)) < 2 * LIMIT_BYTES  # the tray, plus the catch-up of as many changed jobs
    assert str(long_day.pk) in {job["id"] for job in snapshot["jobs"]}
    assert await sync_to_async(ExportJob.objects.count)() == 601

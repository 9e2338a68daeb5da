"""
The workers' events as daphne serves them (exports_project.asgi): a consumer of their own, outside Django's
middleware, that must answer exactly as the Django view the other tests post to.
"""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator

from exports.events import MAX_EVENT_BYTES
from exports.models import ExportJob, ExportStatus
from exports_project.asgi import application

from ..factories import ExportJobFactory
from ..helpers import signed_worker_event
from .test_worker_events import CALL_ID, progress_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def job(project):
    return ExportJobFactory(project=project, status=ExportStatus.PROCESSING, call_id=CALL_ID, progress=10)


async def post(job, event=None, *, method="POST", body=None, **signing):
    body, headers = await sync_to_async(signed_worker_event)(job.pk, event, body=body, **signing)
    headers = [(name.encode(), value.encode()) for name, value in headers.items()]
    path = f"/api/exports/{job.pk}/events/"
    communicator = HttpCommunicator(application, method, path, body=body, headers=headers)
    response = await communicator.get_response(timeout=10)
    return response["status"], dict(response["headers"]), json.loads(response["body"])


async def progress_of(job) -> int:
    return (await ExportJob.objects.aget(pk=job.pk)).progress


async def test_a_signed_event_is_taken_without_djangos_middleware(job):
    status, headers, answer = await post(job, progress_event(job, percent=40))

    assert (status, answer) == (200, {"taken": True, "outcome": "progressed"})
    assert headers[b"Content-Type"] == b"application/json"
    assert b"X-Frame-Options" not in headers  # Django's middleware would have added it
    assert await progress_of(job) == 40


async def test_a_body_over_the_limit_is_413_and_changes_nothing(job):
    status, _, answer = await post(job, body=b"x" * (MAX_EVENT_BYTES + 1))

    assert status == 413 and "at most" in answer["error"]
    assert await progress_of(job) == 10


async def test_a_forged_signature_is_401_and_changes_nothing(job):
    status, _, _ = await post(job, progress_event(job, percent=40), secret="whsec_" + "A" * 44)

    assert status == 401
    assert await progress_of(job) == 10


async def test_only_post_is_answered(job):
    status, headers, answer = await post(job, progress_event(job, percent=40), method="GET")

    assert (status, headers[b"Allow"]) == (405, b"POST")
    assert answer == {"error": "Method not allowed."}
    assert await progress_of(job) == 10


async def test_other_addresses_still_reach_django(job):
    communicator = HttpCommunicator(application, "GET", "/api/exports/active/", headers=[(b"host", b"localhost")])
    response = await communicator.get_response(timeout=10)

    assert (response["status"], json.loads(response["body"])) == (401, {"error": "Authentication required."})

"""
Signed events from workers (modal_jobs/events.py): each job's secret, where its worker posts, taking one in.

An event is only a faster delivery of a record the store already holds, so it
goes through the same parsing (modal_jobs.records) and the same rules as a
look (exports.reconcile.take_event, which the view calls next); a refused or lost event costs nothing but
time. The endpoint is for workers, not browsers: no session, no CSRF; the
Standard Webhooks signature with the job's own secret (derived from
SECRET_KEY and the job id) is the only credential, so a payload that leaks
speaks for its own job only.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac
from standardwebhooks import Webhook

from modal_jobs.records import MAX_RECORD_BYTES, WorkerEvent, parse_event

from .models import ExportJob, WorkerEventReceipt

logger = logging.getLogger(__name__)

# Older receipts can go: their events' timestamps are past the signature's 5-minute tolerance by then.
RECEIPTS_KEPT = timedelta(minutes=10)
MAX_EVENT_BYTES = MAX_RECORD_BYTES  # an event is one record, or one result, in a small envelope
MAX_MESSAGE_ID_CHARACTERS = WorkerEventReceipt._meta.get_field("message_id").max_length
TAKEN_ALREADY = "This event was taken already."
SUPERSEDED = "The job shows this progress record or a newer one already, or has ended."


class EventRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def secret_for(job_id) -> str:
    """The job's signing secret: only this server (SECRET_KEY) and the job's payload have it."""
    digest = salted_hmac("exports.worker-events", str(job_id), algorithm="sha256").digest()
    return "whsec_" + base64.b64encode(digest).decode()


def event_target(job: ExportJob, base_url: str | None = None) -> dict | None:
    """
    What the payload tells the worker (schema.EventTarget): where to post, with the job's secret. None when
    events are off (EXPORTS_EVENTS_URL, the default base, empty).
    """
    base_url = settings.EXPORTS_EVENTS_URL if base_url is None else base_url
    if not base_url:
        return None
    path = reverse("exports:api_worker_event", args=[job.pk])
    return {"url": base_url.rstrip("/") + path, "secret": secret_for(job.pk)}


@dataclass(frozen=True)
class Received:
    job: ExportJob
    event: WorkerEvent
    message_id: str

    def keep_id(self) -> bool:
        """Keep a result's id once it is taken, so a replay is refused; False when another delivery kept it first."""
        try:
            with transaction.atomic():
                WorkerEventReceipt.objects.create(job=self.job, message_id=self.message_id)
        except IntegrityError:
            return False
        return True


def receive(job_id, body: bytes, headers) -> Received:
    """Check the event (size, signature and its age, job, replay); raise EventRefused."""
    if len(body) > MAX_EVENT_BYTES:
        raise EventRefused(413, f"An event is at most {MAX_EVENT_BYTES} bytes.")
    try:
        Webhook(secret_for(job_id)).verify(body, dict(headers), json_parse=False)
    except Exception:  # a bad, stale or missing signature; malformed headers or body raise their own errors
        raise EventRefused(401, "The event's signature does not verify for this job.") from None
    message_id = headers.get("webhook-id", "")
    if len(message_id) > MAX_MESSAGE_ID_CHARACTERS:
        raise EventRefused(400, "The webhook-id is too long.")
    event = parse_event(body)
    if event is None:
        raise EventRefused(400, "The body is not a worker event.")
    if event.job_id != str(job_id):
        raise EventRefused(400, "The event is for another job.")
    job = ExportJob.objects.select_related("project").filter(pk=job_id).first()
    if job is None:
        raise EventRefused(404, "No such job.")
    if event.result is not None and WorkerEventReceipt.objects.filter(job=job, message_id=message_id).exists():
        raise EventRefused(409, TAKEN_ALREADY)
    return Received(job, event, message_id)


def take(job_id, body: bytes, headers) -> tuple[int, dict]:
    """
    Receive the event and take it (reconcile.take_event): the HTTP status and JSON answer, whichever server
    carried the request (consumers.WorkerEventConsumer under daphne, api.worker_event otherwise).

    A progress record is its own receipt: taken only when newer than what the job shows, so a replay (or an
    older record arriving late, or one after the end) changes nothing and is refused, at no write beyond the
    job's one update; a second write per event, on SQLite's single writer, doubled the tail of the latency
    from worker to socket. A result's id is kept, and only after it is taken: a backend killed in between
    leaves the worker's retry free to be taken (a job is finalized once whatever the number of tries); kept
    first, the retry would be refused as a replay and the finished job would wait for the next look.
    """
    from .reconcile import Outcome, take_event  # reconcile imports services, which import event_target from here

    try:
        received = receive(job_id, body, headers)
    except EventRefused as error:
        return error.status, {"error": str(error)}
    try:
        outcome = take_event(received.job, received.event)
    except Exception:  # the store or the database failed us: the worker sends it again, or the next look finds it
        logger.exception("Could not take a %s event of job %s", received.event.type, job_id)
        return 503, {"error": "The event could not be taken now; send it again."}
    if received.event.record is not None and outcome is not Outcome.PROGRESSED:
        return 409, {"error": SUPERSEDED, "outcome": outcome}
    if received.event.result is not None and not received.keep_id():
        return 409, {"error": TAKEN_ALREADY}
    return 200, {"taken": True, "outcome": outcome}


def forget_old_receipts(now=None) -> int:
    """Delete receipts no replay could match any more (reconcile_exports calls it each pass)."""
    now = now or timezone.now()
    deleted, _ = WorkerEventReceipt.objects.filter(received_at__lt=now - RECEIPTS_KEPT).delete()
    return deleted

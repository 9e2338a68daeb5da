"""
Steps many tests take with an export: post JSON to the API, start one, reconcile it until it ends, post a
worker's signed event.
"""

import json
import uuid
from datetime import UTC, datetime

from django.test import Client
from standardwebhooks import Webhook

from exports import services
from exports.events import secret_for
from exports.models import Trigger
from exports.reconcile import reconcile_job

from .processes import wait_for


def post_json(client, url, body=None):
    """POST `body` (an empty object unless given) as JSON, with a Django test client."""
    return client.post(url, data=json.dumps({} if body is None else body), content_type="application/json")


def start(project, clip, kind="multi_clip", *, end=1.0):
    """Start an export of `kind` on `clip` from 0 to `end` s (a multi-clip range, or one overlay highlight)."""
    params = {
        "multi_clip": {"clips": [{"clip_id": clip.pk, "start": 0, "end": end}]},
        "overlay": {"clip_id": clip.pk, "highlights": [{"start": 0, "end": end, "x": 0.5, "y": 0.5, "radius": 0.1}]},
    }[kind]
    return services.start_export(owner=project.owner, project=project, kind=kind, params=params)


def reconcile(job, **options):
    """Reconcile `job` as a look at it would, from the database's current row; the outcome."""
    job.refresh_from_db()
    return reconcile_job(job, trigger=Trigger.VIEW, **options)


def reconcile_until_finished(job, timeout=90):
    """Reconcile `job` again and again until it is neither pending nor processing; the job, refreshed."""

    def finished():
        reconcile(job)
        job.refresh_from_db()
        return job.status not in ("pending", "processing")

    wait_for(finished, timeout=timeout, what="the job to end")
    return job


def signed_worker_event(job_id, event, *, secret=None, message_id=None, sent_at=None, body=None) -> tuple[bytes, dict]:
    """The body and headers a worker posts: signed per Standard Webhooks with the job's secret (or `secret`)."""
    body = json.dumps(event).encode() if body is None else body
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    sent_at = sent_at or datetime.now(UTC)
    signature = Webhook(secret or secret_for(job_id)).sign(message_id, sent_at, body.decode(errors="replace"))
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }
    return body, headers


def send_worker_event(job_id, event, **signing):
    """POST the event as a worker would, to Django (no session, no CSRF token); see signed_worker_event."""
    body, headers = signed_worker_event(job_id, event, **signing)
    return Client(enforce_csrf_checks=True).post(
        f"/api/exports/{job_id}/events/", data=body, content_type="application/json", headers=headers
    )

"""Tell a user's open sockets that a job changed; only ever after the change is committed."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def user_group(user_id) -> str:
    return f"exports.user.{user_id}"


def broadcast_job_on_commit(job_id) -> None:
    """Send after commit; a channel layer that is down (Redis) is logged and never fails the change or the request."""

    def send_committed_job():  # a named function: Django logs a robust callback's failure by its __qualname__
        send_job(job_id)

    transaction.on_commit(send_committed_job, robust=True)


def send_job(job_id) -> None:
    from .models import ExportJob
    from .serializers import serialize_job

    job = ExportJob.objects.select_related("project", "working_video").filter(pk=job_id).first()
    if job is None:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(user_group(job.owner_id), {"type": "job.changed", "job": serialize_job(job)})

"""Tell a user's open sockets that a job changed; only ever after the change is committed."""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction


def user_group(user_id) -> str:
    return f"exports.user.{user_id}"


def broadcast_job_on_commit(job_id, *, while_active: bool = False, from_worker: bool = False) -> None:
    """
    Send after commit; a channel layer that is down (Redis) is logged and never fails the change or the request.

    The job is read when sent, so sockets get its newest state. A change to a running job (progress, a
    cancel request) passes while_active: should the job have finished by then, the transition that
    finished it sends its own broadcast, and this one would only repeat it. from_worker says the worker's
    own event brought the change: a socket need not look at a job whose worker tells it (consumers.py).
    """

    def send_committed_job():  # a named function: Django logs a robust callback's failure by its __qualname__
        send_job(job_id, while_active=while_active, from_worker=from_worker)

    transaction.on_commit(send_committed_job, robust=True)


def send_job(job_id, *, while_active: bool = False, from_worker: bool = False) -> None:
    from .models import ExportJob
    from .serializers import serialize_job

    job = ExportJob.objects.for_serializing().filter(pk=job_id).first()
    if job is None or (while_active and not job.is_active):
        return
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(
        user_group(job.owner_id), {"type": "job.changed", "job": serialize_job(job), "from_worker": from_worker}
    )

"""
Close the live-progress sockets that no longer belong to a signed-in user: of a session that signs
out, and of a user who is deactivated or whose password changes (they would otherwise outlive it).
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from .broadcast import user_group

logger = logging.getLogger(__name__)


@receiver(user_logged_out, dispatch_uid="exports.close_sockets_of_ended_session")
def close_sockets_of_ended_session(sender, request, user, **kwargs):
    if user is None or request is None or not request.session.session_key:
        return
    tell_sockets(user.pk, {"type": "session.ended", "session_key": request.session.session_key})


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="exports.recheck_sockets_of_changed_user")
def recheck_sockets_of_changed_user(sender, instance, update_fields=None, **kwargs):
    """A saved user may be deactivated or have a new password: their sockets check their session once more."""
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a sign-in changes nothing a socket holds

    def send_committed_recheck():  # named: Django logs a robust callback's failure by its __qualname__
        tell_sockets(instance.pk, {"type": "access.changed"})

    transaction.on_commit(send_committed_recheck, robust=True)


def tell_sockets(user_id, message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(user_group(user_id), message)
    except Exception:  # the channel layer being down must not stop anyone signing out or saving a user
        logger.warning("Could not send %s to the sockets of user %s", message["type"], user_id, exc_info=True)

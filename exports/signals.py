"""Close the live-progress sockets of a session that signs out (they would otherwise outlive it)."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from .broadcast import user_group

logger = logging.getLogger(__name__)


@receiver(user_logged_out, dispatch_uid="exports.close_sockets_of_ended_session")
def close_sockets_of_ended_session(sender, request, user, **kwargs):
    if user is None or request is None or not request.session.session_key:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "session.ended", "session_key": request.session.session_key}
    try:
        async_to_sync(layer.group_send)(user_group(user.pk), message)
    except Exception:  # the channel layer being down must not stop anyone signing out
        logger.warning("Could not tell the sockets of user %s that their session ended", user.pk, exc_info=True)

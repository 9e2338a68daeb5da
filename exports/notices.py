"""
Telling a user their export ended: on any open page (the socket's job change, which pages turn into a
notice), or by e-mail when no page of theirs is open, unless they turned e-mail off.

Exactly one notice per job whatever races: the transition that ends a job wins once, and after its commit
the notice is claimed by a conditional update of `notice_sent_at` before anything is sent; what a crash
left unclaimed is sent by the next `reconcile_exports`. Cancels are the user's own doing: no notice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import timezone

from .models import ExportJob, ExportStatus, NoticePreference

logger = logging.getLogger(__name__)

NOTICED_STATUSES = (ExportStatus.COMPLETE, ExportStatus.ERROR)
# A socket ticks every EXPORTS_SOCKET_TICK_SECONDS while its user has an export running; its presence is
# written at most this often, and a user is away when none has been seen for AWAY_AFTER or their last
# socket closed.
PRESENCE_EVERY = timedelta(seconds=5)
AWAY_AFTER = timedelta(seconds=15)
# Jobs that ended this long ago without a notice (a crash between the end and the claim) are not told any more.
LATE_NOTICE_LIMIT = timedelta(hours=1)


_noted: dict[int, datetime] = {}  # this process's last write of each user's presence


def seen_on_a_socket(user_id, now=None) -> None:
    """A socket of the user is open (its tick runs): note it, at most every PRESENCE_EVERY from this process."""
    now = now or timezone.now()
    if user_id in _noted and now - _noted[user_id] < PRESENCE_EVERY:
        return
    if not NoticePreference.objects.filter(user_id=user_id).update(socket_seen_at=now):
        NoticePreference.objects.get_or_create(user_id=user_id, defaults={"socket_seen_at": now})
    _noted[user_id] = now


def left_a_socket(user_id) -> None:
    """
    A socket of the user closed: count them away until a socket of theirs ticks again (another open tab
    does within a tick or PRESENCE_EVERY). Better an e-mail too many beside an open tab than none to a
    user who closed the browser just before the export ended.
    """
    _noted.pop(user_id, None)
    NoticePreference.objects.filter(user_id=user_id).update(socket_seen_at=None)


def tell_owner(job_id) -> bool:
    """Claim the job's notice and, if the owner is away with e-mail on, send it; True when this call claimed it."""
    now = timezone.now()
    claimed = ExportJob.objects.filter(pk=job_id, status__in=NOTICED_STATUSES, notice_sent_at__isnull=True).update(
        notice_sent_at=now
    )
    if not claimed:
        return False
    job = ExportJob.objects.select_related("owner", "project").get(pk=job_id)
    seen = NoticePreference.objects.filter(user_id=job.owner_id).values_list("socket_seen_at", flat=True).first()
    away = seen is None or now - seen > AWAY_AFTER
    if away and job.owner.email and NoticePreference.email_when_away_for(job.owner_id):
        try:
            send_mail(**notice_mail(job), from_email=None, recipient_list=[job.owner.email])
        except Exception:  # a mail server down costs the mail, never the job or the request
            logger.exception("Could not e-mail the notice of job %s", job.pk)
    return True


def notice_mail(job: ExportJob) -> dict:
    """Subject and text of the mail: the project, the export, its length and where to get it."""
    context = {
        "job": job,
        "video": getattr(job, "working_video", None) if job.status == ExportStatus.COMPLETE else None,
        "project_url": settings.SITE_URL.rstrip("/") + job.project.get_absolute_url(),
    }
    subject = render_to_string("exports/notice_subject.txt", context).strip()
    return {"subject": subject, "message": render_to_string("exports/notice_mail.txt", context)}


def tell_owners_left_untold(now=None) -> int:
    """Notices a crash left unclaimed (reconcile_exports sends them); the number claimed."""
    now = now or timezone.now()
    untold = ExportJob.objects.filter(
        status__in=NOTICED_STATUSES, notice_sent_at__isnull=True, finished_at__gte=now - LATE_NOTICE_LIMIT
    )
    return sum(tell_owner(job_id) for job_id in untold.values_list("pk", flat=True))

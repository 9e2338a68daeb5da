import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from projects.models import Project


class ExportKind(models.TextChoices):
    MULTI_CLIP = "multi_clip", "Multi-clip"
    FRAMING_AI = "framing_ai", "AI framing"
    OVERLAY = "overlay", "Highlight overlay"


class ExportStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    COMPLETE = "complete", "Complete"
    ERROR = "error", "Error"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (ExportStatus.PENDING, ExportStatus.PROCESSING)
TERMINAL_STATUSES = (ExportStatus.COMPLETE, ExportStatus.ERROR, ExportStatus.CANCELLED)
# The allowed transitions: the statuses a job may move to each status from (a condition of every transition).
ALLOWED_SOURCES = {
    ExportStatus.PROCESSING: (ExportStatus.PENDING,),
    ExportStatus.COMPLETE: ACTIVE_STATUSES,
    ExportStatus.ERROR: ACTIVE_STATUSES,
    ExportStatus.CANCELLED: ACTIVE_STATUSES,
}


class ErrorReason(models.TextChoices):
    """Why a job failed: the label and the job's error_message are for admins, `for_user` for its owner."""

    SPAWN_FAILED = "spawn_failed", "The executor refused the spawn"
    FAILED = "failed", "The worker failed"
    TIMED_OUT = "timed_out", "The function hit its time limit"
    LOST = "lost", "The executor lost the call"
    ADMIN = "admin", "Marked as error by an admin"

    def for_user(self, job_id) -> str:
        """A plain sentence and the next step; the technical text (ffmpeg's, Modal's) stays in the admin."""
        support = f"contact support and quote job {job_id}"
        return {
            ErrorReason.SPAWN_FAILED: "The export could not start. Try again in a few minutes.",
            ErrorReason.FAILED: f"Something went wrong while rendering. Retry it; if it fails again, {support}.",
            ErrorReason.TIMED_OUT: "The export ran past its time limit. Try a shorter export, or split it into parts.",
            ErrorReason.LOST: "The export stopped reporting and was given up. Retry it.",
            ErrorReason.ADMIN: f"An administrator stopped this export. To know why, {support}.",
        }[self]


class ExecutorBackend(models.TextChoices):
    LOCAL = "local", "Local worker"
    MODAL = "modal", "Modal"


# Finished jobs stay in the tray (and the socket snapshot) this long unless dismissed.
TRAY_RETENTION = timedelta(hours=24)
# The most jobs the tray (pages, the API's list, the socket's snapshot) holds: the rest are in the history,
# and a tray of the largest jobs stays far under 256 KB however long the history.
TRAY_SIZE = 20


class Trigger(models.TextChoices):
    """Who looked at the job when something changed."""

    VIEW = "view", "A page or API request"
    CONSUMER = "consumer", "A live-progress socket"
    COMMAND = "command", "reconcile_exports"
    ADMIN = "admin", "An admin"
    WORKER = "worker", "The worker's event"


class ExportJobQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status__in=ACTIVE_STATUSES)

    def terminal(self):
        return self.filter(status__in=TERMINAL_STATUSES)

    def to_reconcile(self):
        """The active ones, with the project that applying an outcome reads."""
        return self.active().select_related("project")

    def owned_by(self, user):
        """The user's jobs as they see them: a deleted project's jobs are gone with it."""
        return self.started_by(user).filter(project__deleted_at__isnull=True)

    def started_by(self, user):
        """All the user's jobs, a deleted project's included: they still run, count and get reconciled."""
        return self.filter(owner=user)

    def for_serializing(self):
        """With everything serialize_job reads, in the same query."""
        return self.select_related("project", "working_video")

    def in_tray(self, *, now=None):
        """Active jobs plus those finished in the last day and not dismissed: what the tray, API and socket show."""
        now = now or timezone.now()
        recently_finished = models.Q(
            status__in=TERMINAL_STATUSES, dismissed_at__isnull=True, finished_at__gte=now - TRAY_RETENTION
        )
        return self.filter(models.Q(status__in=ACTIVE_STATUSES) | recently_finished)

    def tray_of(self, user, *, now=None) -> list["ExportJob"]:
        """
        The user's tray, oldest first: their active jobs, then the newest finished ones, TRAY_SIZE in all,
        with what serializing them reads. The one query behind pages, the API's list and the socket.
        """
        active_first = models.Case(models.When(status__in=ACTIVE_STATUSES, then=0), default=1)
        shown = self.owned_by(user).in_tray(now=now).for_serializing().order_by(active_first, "-created_at")[:TRAY_SIZE]
        return sorted(shown, key=lambda job: job.created_at)


class ExportJob(models.Model):
    """
    One export of a project, from creation until the executor's call ends.

    The row holds what the backend last learned from the worker's progress record
    and from the executor; reconciliation claims its checks through the two
    *_checked_at columns so that many viewers cost one read each.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="export_jobs")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="export_jobs")
    kind = models.CharField(max_length=20, choices=ExportKind)
    params = models.JSONField(default=dict, help_text="Validated export parameters.")
    backend = models.CharField(max_length=10, choices=ExecutorBackend)
    call_id = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="The executor's call id, in the backend's own format (fc-... on Modal, local-... locally).",
    )
    status = models.CharField(max_length=12, choices=ExportStatus, default=ExportStatus.PENDING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent, 0-100; never goes backwards.")
    stage = models.CharField(max_length=64, blank=True, default="")
    message = models.CharField(max_length=500, blank=True, default="")
    progress_at = models.DateTimeField(null=True, blank=True, help_text="The worker's time of the progress shown.")
    remaining_seconds = models.FloatField(
        null=True,
        blank=True,
        help_text="The worker's estimate of the time left, as of progress_at; empty until stable.",
    )
    heartbeat_seen_at = models.DateTimeField(
        null=True, blank=True, help_text="When the backend last saw the progress record change (backend clock)."
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)
    error_reason = models.CharField(max_length=20, choices=ErrorReason, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress_checked_at = models.DateTimeField(null=True, blank=True)
    executor_checked_at = models.DateTimeField(null=True, blank=True)
    events_seen_at = models.DateTimeField(
        null=True, blank=True, help_text="The last signed event from the worker; while they come, looks back off."
    )
    notice_sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When the owner was told it finished (claimed once: one notice per job)."
    )
    # On the retried job, not the retry: serializing reads the id with no join (a reverse join made SQLite
    # scan the whole history on every tray query). Claimed by a conditional update as the retry is created.
    retried_as = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="retry_of",
        editable=False,
        help_text="The job this failed or cancelled one was retried as; one retry each.",
    )
    records_pruned_at = models.DateTimeField(
        null=True, blank=True, help_text="When prune_exports deleted its progress and result records."
    )

    objects = ExportJobQuerySet.as_manager()

    @property
    def error_for_user(self) -> str:
        return ErrorReason(self.error_reason).for_user(self.pk) if self.error_reason else ""

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Serves every non-terminal lookup (a user's tray, the consumer's
            # tick, reconcile_exports) without touching finished history.
            models.Index(
                fields=["owner", "created_at"],
                name="exportjob_active_by_owner",
                condition=models.Q(status__in=ACTIVE_STATUSES),
            ),
            models.Index(fields=["owner", "-created_at"], name="exportjob_history_by_owner"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "kind"],
                condition=models.Q(status__in=ACTIVE_STATUSES),
                name="one_active_export_per_project_kind",
                violation_error_message="An export of this kind is already running for this project.",
            ),
            models.CheckConstraint(
                condition=models.Q(progress__gte=0, progress__lte=100), name="exportjob_progress_percent"
            ),
            models.CheckConstraint(condition=models.Q(status__in=ExportStatus.values), name="exportjob_status_known"),
            models.CheckConstraint(
                condition=(
                    models.Q(status=ExportStatus.ERROR) & ~models.Q(error_reason="")
                    | ~models.Q(status=ExportStatus.ERROR) & models.Q(error_reason="")
                ),
                name="exportjob_error_reason_iff_error",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} of {self.project} ({self.get_status_display()})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def took(self) -> timedelta | None:
        """From the click to the end, as its owner waited for it: queueing and retries included."""
        return None if self.finished_at is None else self.finished_at - self.created_at

    def remaining_seconds_at(self, now) -> float | None:
        """The worker's estimate counted down to `now`: every page shows the same figure at once."""
        if self.status not in ACTIVE_STATUSES or self.remaining_seconds is None or self.progress_at is None:
            return None
        return max(0.0, self.remaining_seconds - max(0.0, (now - self.progress_at).total_seconds()))

    def is_stale(self, now) -> bool:
        """No sign of life (heartbeat, start, creation) for EXPORTS_STALE_WINDOW_MINUTES."""
        last_sign_of_life = self.heartbeat_seen_at or self.started_at or self.created_at
        return now - last_sign_of_life > timedelta(minutes=settings.EXPORTS_STALE_WINDOW_MINUTES)

    def lost_message(self, call_status: str | None) -> str:
        """Why a stale job is lost: it never started (no call), or its executor no longer vouches for the call."""
        window = f"{settings.EXPORTS_STALE_WINDOW_MINUTES:g} minutes"
        if call_status is None:
            return f"The export never started: no call id and no progress for {window}."
        return (
            f"The executor no longer knows this call ({call_status}), there is no result, "
            f"and no heartbeat for {window}."
        )

    def finish_time(self, reported, *, now):
        """
        When the job finished: the worker's reported time, since the backend may notice it long after, held
        within what the backend's own clock allows (not before the job was created, not after now).
        """
        if reported is None:
            return now
        return min(max(reported, self.created_at), now)


class ExportJobEvent(models.Model):
    """
    The job's timeline: every state change and every answer worth keeping, with who looked.

    Written by exports.services only, in the same transaction as the change it records.
    """

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        SPAWNED = "spawned", "Spawned on the executor"
        SPAWN_UNCONFIRMED = "spawn_unconfirmed", "Spawn not confirmed"
        CALL_ID_ADOPTED = "call_id_adopted", "Call id adopted from the progress record"
        PROGRESS = "progress", "Progress milestone"
        CANCEL_REQUESTED = "cancel_requested", "Cancel requested"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        RETRIED = "retried", "Retried as a new job"
        DISMISSED = "dismissed", "Dismissed"

    job = models.ForeignKey(ExportJob, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, choices=Kind)
    trigger = models.CharField(max_length=12, choices=Trigger)
    message = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["job", "created_at"], name="exportjobevent_by_job")]

    def __str__(self):
        return f"{self.get_kind_display()} ({self.get_trigger_display()})"


class NoticePreference(models.Model):
    """How a user hears that an export finished: e-mail while they are away, unless they turned it off."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="export_notices"
    )
    email_when_away = models.BooleanField(default=True, help_text="E-mail when an export ends and no page is open.")
    socket_seen_at = models.DateTimeField(
        null=True, blank=True, help_text="When a live-progress socket of theirs last ticked: a page is open."
    )

    @staticmethod
    def email_when_away_for(user_id) -> bool:
        """On unless the user turned it off (no row: never chosen)."""
        chosen = NoticePreference.objects.filter(user_id=user_id).values_list("email_when_away", flat=True).first()
        return chosen is None or chosen


class WorkerEventReceipt(models.Model):
    """A worker's result event taken, by its webhook-id: the same id again is a replay and is refused."""

    job = models.ForeignKey(ExportJob, on_delete=models.CASCADE, related_name="+")
    message_id = models.CharField(max_length=100)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "message_id"], name="workereventreceipt_once")]


class WorkingVideo(models.Model):
    """The finalized result of an export; the unique link to its job makes a second finalization impossible."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="working_videos")
    export_job = models.OneToOneField(ExportJob, on_delete=models.RESTRICT, related_name="working_video")
    media = models.FileField(max_length=255, help_text="Storage key of the output video.")
    duration = models.FloatField(help_text="Seconds.")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size = models.BigIntegerField(help_text="Bytes.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.project} / {self.export_job.get_kind_display()} ({self.created_at:%Y-%m-%d %H:%M})"

    def get_media_url(self):
        return reverse("exports:working_video_media", args=[self.pk])

    def get_download_url(self):
        return f"{self.get_media_url()}?download=1"

    def as_json(self) -> dict:
        """The one JSON shape of a working video: in a job's JSON and in its project's."""
        return {
            "id": self.pk,
            "url": self.get_media_url(),
            "download_url": self.get_download_url(),
            "duration": self.duration,
            "width": self.width,
            "height": self.height,
        }

    @property
    def download_filename(self) -> str:
        return f"{self.project.name} - {self.export_job.get_kind_display()} - {self.created_at:%Y-%m-%d %H%M}.mp4"

"""
Business rules of exports: start, cancel, retry, dismiss, delete (reconcile.py brings jobs up to date).

Every state change is a conditional UPDATE whose row count decides the winner
(or happens under select_for_update in a transaction), is recorded as an
ExportJobEvent in the same transaction, and is broadcast to the owner after
commit by whoever won. Slow I/O (the executor, the object store) never happens
inside a transaction.
"""

from __future__ import annotations

import logging
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from modal_jobs.chunks import stop_chunks
from modal_jobs.executors import ExecutorUnavailable, SpawnRefused
from modal_jobs.schema import PAYLOAD_SCHEMA_VERSION, ClipFacts, clip_ids, validate_params
from projects.models import Clip, Project

from .broadcast import broadcast_job_on_commit
from .events import event_target
from .executor import Budget, get_executor
from .models import (
    ACTIVE_STATUSES,
    ALLOWED_SOURCES,
    TERMINAL_STATUSES,
    ErrorReason,
    ExportJob,
    ExportJobEvent,
    ExportStatus,
    Trigger,
)
from .notices import NOTICED_STATUSES, tell_owner
from .pruning import purge_project_if_idle
from .storage import object_store

logger = logging.getLogger(__name__)
Event = ExportJobEvent.Kind


class ExportRefused(Exception):
    """The request cannot be honoured; the message is meant for the user."""


class AlreadyRunning(ExportRefused):
    def __init__(self, job: ExportJob):
        self.job = job
        super().__init__(f"A {job.get_kind_display()} export is already running for this project.")


class AlreadyRetried(ExportRefused):
    def __init__(self, job: ExportJob):
        self.job = job
        super().__init__("This export was retried already; its retry is below.")


class TooManyExports(ExportRefused):
    pass


class NotRetryable(ExportRefused):
    pass


class ClipInUse(ExportRefused):
    pass


# Events and transitions


def record_event(job, kind, *, trigger, message: str = "", data: dict | None = None, actor=None) -> None:
    ExportJobEvent.objects.create(
        job_id=job.pk, kind=kind, trigger=trigger, message=message, data=data or {}, actor=actor
    )


def transition(
    job: ExportJob, status, *, trigger, event, message: str = "", actor=None, event_data: dict | None = None, **fields
) -> bool:
    """Move the job to `status` if it is still in an allowed source status; return whether this call did it."""
    now = timezone.now()
    values = {"status": status, "updated_at": now, **fields}
    if status in TERMINAL_STATUSES:
        values.setdefault("finished_at", now)
    with transaction.atomic():
        changed = ExportJob.objects.filter(pk=job.pk, status__in=ALLOWED_SOURCES[status]).update(**values)
        if changed:
            record_event(job, event, trigger=trigger, message=message, data=event_data, actor=actor)
            broadcast_job_on_commit(job.pk)
            if status in NOTICED_STATUSES:
                transaction.on_commit(partial(tell_owner, job.pk), robust=True)
    if changed:
        for name, value in values.items():
            setattr(job, name, value)
    return bool(changed)


def fail(job: ExportJob, reason: ErrorReason, message: str, *, trigger, actor=None, **fields) -> bool:
    return transition(
        job,
        ExportStatus.ERROR,
        trigger=trigger,
        event=Event.FAILED,
        message=f"{reason.label}: {message}",
        actor=actor,
        error_reason=reason,
        error_message=message[:2000],
        **fields,
    )


# Starting


def clip_facts(project: Project, kind: str, params) -> dict[int, ClipFacts]:
    wanted = clip_ids(kind, params) if isinstance(params, dict) else []
    clips = Clip.objects.filter(project=project, pk__in=wanted)
    return {
        clip.pk: ClipFacts(duration=clip.duration, width=clip.width, height=clip.height, has_audio=clip.has_audio)
        for clip in clips
    }


def build_payload(job: ExportJob) -> dict:
    clips = Clip.objects.filter(project_id=job.project_id, pk__in=clip_ids(job.kind, job.params))
    return {
        "schema_version": PAYLOAD_SCHEMA_VERSION,
        "job_id": str(job.pk),
        "kind": job.kind,
        "params": job.params,
        "inputs": {
            str(clip.pk): {
                "key": clip.media.name,
                "duration": clip.duration,
                "width": clip.width,
                "height": clip.height,
                "has_audio": clip.has_audio,
            }
            for clip in clips
        },
        "events": event_target(job),
        "chunk_seconds": settings.EXPORTS_CHUNK_SECONDS,
        "chunks_of": str(first_of_retries(job).pk),
    }


def first_of_retries(job: ExportJob) -> ExportJob:
    """The job a chain of retries started from: its chunk folder serves them all (modal_jobs/chunks.py)."""
    while (retried := ExportJob.objects.filter(retried_as=job).first()) is not None:
        job = retried
    return job


def start_export(
    *, owner, project: Project, kind: str, params, trigger=Trigger.VIEW, actor=None, retry_of: ExportJob | None = None
) -> ExportJob:
    """
    Create the job (pending), spawn it and store its call id (processing).

    Raises InvalidParams (nothing created), AlreadyRunning (the active job of
    this project and kind: the database refuses a second one, so concurrent
    starts spawn once), AlreadyRetried (`retry_of` has its retry: claiming it is a
    conditional update in the same transaction, so of two racing retries one is
    created and spawned) or TooManyExports. Only a definite refusal is
    spawn_failed; an executor that does not answer leaves the job pending, and
    reconciliation adopts the call id from the worker's first progress record.
    """
    validated = validate_params(kind, params, clip_facts(project, kind, params))
    try:
        with transaction.atomic():
            get_user_model().objects.select_for_update().filter(pk=owner.pk).exists()  # serialize the cap check
            if ExportJob.objects.started_by(owner).active().count() >= settings.EXPORTS_MAX_ACTIVE_PER_USER:
                raise TooManyExports(
                    f"You already have {settings.EXPORTS_MAX_ACTIVE_PER_USER} exports running; "
                    "wait for one to finish or cancel one."
                )
            job = ExportJob.objects.create(
                owner=owner,
                project=project,
                kind=kind,
                params=validated.model_dump(mode="json"),
                backend=settings.EXPORTS_BACKEND,
            )
            if retry_of is not None:
                claimed = ExportJob.objects.filter(pk=retry_of.pk, retried_as__isnull=True).update(
                    retried_as=job,
                    updated_at=timezone.now(),  # catch-ups carry the change
                )
                if not claimed:  # a retry racing this one got there first: nothing of this one is kept
                    raise AlreadyRetried(ExportJob.objects.get(pk=retry_of.pk).retried_as)
            record_event(job, Event.CREATED, trigger=trigger, actor=actor)
            broadcast_job_on_commit(job.pk)
    except IntegrityError:
        existing = ExportJob.objects.active().filter(project=project, kind=kind).first()
        if existing is None:  # it finished in between: a real integrity problem
            raise
        raise AlreadyRunning(existing) from None

    try:
        call_id = get_executor().spawn(kind, build_payload(job))
    except SpawnRefused as error:
        fail(job, ErrorReason.SPAWN_FAILED, str(error), trigger=trigger)
    except ExecutorUnavailable as error:
        logger.warning("Spawn of job %s not confirmed: %s", job.pk, error)
        with transaction.atomic():
            record_event(job, Event.SPAWN_UNCONFIRMED, trigger=trigger, message=str(error))
    else:
        record_call_id(job, call_id, trigger=trigger, event=Event.SPAWNED)
    job.refresh_from_db()
    return job


def record_call_id(job: ExportJob, call_id: str, *, trigger, event, budget: Budget | None = None) -> bool:
    """Store the call id of a pending job (processing from now); a cancel requested meanwhile is sent now."""
    recorded = transition(
        job,
        ExportStatus.PROCESSING,
        trigger=trigger,
        event=event,
        message=call_id,
        call_id=call_id,
        started_at=timezone.now(),
    )
    job.refresh_from_db(fields=["call_id", "status", "cancel_requested_at"])
    if recorded and job.cancel_requested_at:
        send_cancel(job, budget=budget)
    return recorded


def send_cancel(job: ExportJob, *, budget) -> None:
    try:
        # Chunk calls (a chunked export's) stop on this marker: the call the executor cancels may be dead
        # already, with its chunks rendering on, and neither executor cancels a call's children.
        if settings.EXPORTS_CHUNK_SECONDS:
            stop_chunks(object_store(), str(job.pk))
    except Exception:  # the executor's cancel still goes out; a chunk left running finds no export to join
        logger.warning("Could not leave the stop marker for the chunks of job %s", job.pk, exc_info=True)
    try:
        get_executor().cancel(job.call_id, budget=budget)
    except ExecutorUnavailable as error:
        logger.info("Cancel of job %s not delivered yet: %s", job.pk, error)


# The user's other actions


def cancel_export(job: ExportJob, *, trigger=Trigger.VIEW, actor=None, budget: Budget | None = None) -> ExportJob:
    """Record the cancel request and ask the executor; the job is cancelled once the executor confirms."""
    now = timezone.now()
    with transaction.atomic():
        requested = ExportJob.objects.filter(
            pk=job.pk, status__in=ACTIVE_STATUSES, cancel_requested_at__isnull=True
        ).update(cancel_requested_at=now, updated_at=now)
        if requested:
            record_event(job, Event.CANCEL_REQUESTED, trigger=trigger, actor=actor)
            broadcast_job_on_commit(job.pk, while_active=True)
    job.refresh_from_db()
    if job.is_active and job.call_id:
        send_cancel(job, budget=budget)
    return job


def retry_export(job: ExportJob, *, trigger=Trigger.VIEW, actor=None) -> ExportJob:
    """Start the job again as a new job, once: a second retry raises AlreadyRetried with the first."""
    if job.status not in (ExportStatus.ERROR, ExportStatus.CANCELLED):
        raise NotRetryable("Only failed or cancelled exports can be retried.")
    job.refresh_from_db(fields=["retried_as"])
    if job.retried_as_id is not None:
        raise AlreadyRetried(job.retried_as)
    new_job = start_export(
        owner=job.owner,
        project=job.project,
        kind=job.kind,
        params=job.params,
        trigger=trigger,
        actor=actor,
        retry_of=job,
    )
    with transaction.atomic():
        record_event(job, Event.RETRIED, trigger=trigger, actor=actor, data={"new_job_id": str(new_job.pk)})
        broadcast_job_on_commit(job.pk)  # its other pages stop offering Retry
    return new_job


def dismiss_export(job: ExportJob, *, trigger=Trigger.VIEW) -> ExportJob:
    now = timezone.now()
    with transaction.atomic():
        dismissed = ExportJob.objects.filter(pk=job.pk, status__in=TERMINAL_STATUSES, dismissed_at__isnull=True).update(
            dismissed_at=now, updated_at=now
        )
        if dismissed:
            record_event(job, Event.DISMISSED, trigger=trigger)
            broadcast_job_on_commit(job.pk)
    job.refresh_from_db()
    return job


def delete_clip(clip: Clip) -> None:
    """Delete a clip unless an active export reads it."""
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=clip.project_id).exists()
        for job in ExportJob.objects.active().filter(project_id=clip.project_id):
            if clip.pk in clip_ids(job.kind, job.params):
                raise ClipInUse(f"“{clip}” is used by a running {job.get_kind_display()} export; cancel it first.")
        key = clip.media.name
        storage = clip.media.storage
        clip.delete()
        transaction.on_commit(lambda: storage.delete(key), robust=True)


def delete_project(project: Project, *, trigger=Trigger.VIEW) -> None:
    """Hide the project at once, cancel its exports, and purge it once they have all stopped."""
    Project.objects.filter(pk=project.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
    project.refresh_from_db()
    for job in ExportJob.objects.active().filter(project=project):
        cancel_export(job, trigger=trigger)
    purge_project_if_idle(project)


def mark_as_error(job: ExportJob, *, actor, message: str = "", budget: Budget | None = None) -> bool:
    """An admin ends a job as an error; its call is cancelled too, so nothing keeps running for nobody."""
    reason = message or f"Marked as error by {actor.get_username()}."
    changed = fail(job, ErrorReason.ADMIN, reason, trigger=Trigger.ADMIN, actor=actor)
    if changed and job.call_id:
        send_cancel(job, budget=budget)
    return changed

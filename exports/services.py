"""
Business rules of exports: start, reconcile, finalize, cancel, retry, dismiss, delete.

Every state change is a conditional UPDATE whose row count decides the winner
(or happens under select_for_update in a transaction), is recorded as an
ExportJobEvent in the same transaction, and is broadcast to the owner after
commit by whoever won. Slow I/O (the executor, the object store) never happens
inside a transaction.
"""

from __future__ import annotations

import enum
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from exports_project.http import isoformat
from modal_jobs.executors import CallState, CallStatus, ExecutorUnavailable, SpawnRefused
from modal_jobs.records import OUTPUT, RECORDS, ExportResult, job_key
from modal_jobs.schema import PAYLOAD_SCHEMA_VERSION, ClipFacts, clip_ids, validate_params
from projects.models import Clip, Project

from . import records
from .broadcast import broadcast_job_on_commit
from .executor import Budget, get_executor
from .models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    ErrorReason,
    ExportJob,
    ExportJobEvent,
    ExportStatus,
    Trigger,
    WorkingVideo,
)
from .storage import object_store

logger = logging.getLogger(__name__)
Event = ExportJobEvent.Kind

ALLOWED_SOURCES = {
    ExportStatus.PROCESSING: (ExportStatus.PENDING,),
    ExportStatus.COMPLETE: ACTIVE_STATUSES,
    ExportStatus.ERROR: ACTIVE_STATUSES,
    ExportStatus.CANCELLED: ACTIVE_STATUSES,
}
PROGRESS_MILESTONES = (25, 50, 75)


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


class Outcome(enum.StrEnum):
    """What one reconciliation did (or, in a dry run, would do)."""

    TERMINAL = "terminal"
    UNCHANGED = "unchanged"
    PROGRESSED = "progressed"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    LOST = "lost"
    UNAVAILABLE = "unavailable"
    ERROR = "error"  # the check itself failed (logged with the job id); the job is left as it was


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
    }


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
        _send_cancel(job, budget=budget)
    return recorded


# Reconciling


@dataclass(frozen=True)
class Decision:
    """What the executor's answer (and the stored result) mean for the job."""

    outcome: Outcome
    result: ExportResult | None = None
    reason: ErrorReason | None = None
    message: str = ""


def decide(job: ExportJob, state: CallState, *, stored_result: ExportResult | None, now) -> Decision:
    """Map the executor's answer to an outcome; pure, so the command's dry run uses it as is."""
    status = state.status
    if status is CallStatus.RUNNING:
        return Decision(Outcome.UNCHANGED)
    if status is CallStatus.SUCCEEDED:
        return Decision(Outcome.COMPLETED, result=state.result)
    if status is CallStatus.FAILED:
        return Decision(Outcome.FAILED, reason=ErrorReason.FAILED, message=state.message, result=state.result)
    if status is CallStatus.TERMINATED:
        if job.cancel_requested_at:
            return Decision(Outcome.CANCELLED, message="Cancelled.")
        detail = f" ({state.message})" if state.message else ""
        return Decision(Outcome.FAILED, reason=ErrorReason.FAILED, message=f"Stopped by the executor{detail}.")
    if status is CallStatus.TIMED_OUT:
        return Decision(Outcome.TIMED_OUT, reason=ErrorReason.TIMED_OUT, message=state.message or "Time limit hit.")
    # EXPIRED or UNKNOWN: the executor cannot vouch for the call; the stored result decides.
    if stored_result is not None:
        if stored_result.succeeded:
            return Decision(Outcome.COMPLETED, result=stored_result)
        message = stored_result.message
        return Decision(Outcome.FAILED, reason=ErrorReason.FAILED, message=message, result=stored_result)
    if is_stale(job, now=now):
        return Decision(Outcome.LOST, reason=ErrorReason.LOST, message=lost_message(job, state))
    return Decision(Outcome.UNCHANGED)


def is_stale(job: ExportJob, *, now) -> bool:
    last_sign_of_life = job.heartbeat_seen_at or job.started_at or job.created_at
    return now - last_sign_of_life > timedelta(minutes=settings.EXPORTS_STALE_WINDOW_MINUTES)


def lost_message(job: ExportJob, state: CallState | None) -> str:
    window = f"{settings.EXPORTS_STALE_WINDOW_MINUTES:g} minutes"
    if state is None:
        return f"The export never started: no call id and no progress for {window}."
    return (
        f"The executor no longer knows this call ({state.status}), there is no result, and no heartbeat for {window}."
    )


def reconcile_job(job: ExportJob, *, trigger, budget: Budget | None = None, dry_run: bool = False, now=None) -> Outcome:
    """
    Bring the job's row in line with its worker and its executor call; see DESIGN.md, "The one mechanism".

    The progress read and the executor check are each claimed with a
    conditional update on their own checked-at time, so however many viewers
    look, each is done about once per interval. A dry run claims nothing and
    writes nothing; it reports what a real run would do.
    """
    return reconcile_each([job], trigger=trigger, budget=budget, dry_run=dry_run, now=now)[0][1]


def reconcile_jobs(jobs, *, trigger) -> list[ExportJob]:
    """Reconcile the active ones of `jobs` within one request's executor budget; return those still active."""
    budget = Budget(settings.EXPORTS_REQUEST_BUDGET_SECONDS)
    checked = reconcile_each(jobs.active().select_related("project"), trigger=trigger, budget=budget)
    return [job for job, _ in checked if job.is_active]


def reconcile_each(jobs, *, trigger, budget: Budget | None = None, dry_run: bool = False, now=None) -> list:
    """
    Reconcile each job as reconcile_job does, but ask the executor about all of them at once.

    A page whose owner has twenty running exports then waits one round trip
    to the executor, not twenty; reconcile_exports keeps many calls in flight
    with few database threads. One job whose check fails (logged) ends as
    Outcome.ERROR and costs the others nothing. Returns (job, outcome) pairs.
    """
    checks = [_Check(job=job, now=now or timezone.now(), dry_run=dry_run) for job in jobs]
    for check in checks:
        with _failing_alone(check):
            _begin_check(check, trigger=trigger, budget=budget)
    polled = [check for check in checks if check.poll]
    states = get_executor().poll_many([check.job.call_id for check in polled], budget=budget)
    for check in polled:
        check.state = states[check.job.call_id]
    for check in checks:
        with _failing_alone(check):
            check.outcome = _conclude_check(check, trigger=trigger, budget=budget)
    return [(check.job, check.outcome) for check in checks]


@contextmanager
def _failing_alone(check: _Check):
    """A step of one job's check that raises is logged with the job id and ends that check only, as ERROR."""
    try:
        yield
    except DatabaseError:
        raise  # the database is everyone's: the caller's transaction and connection handling decide
    except Exception:
        logger.exception("Reconciling job %s failed", check.job.pk)
        check.outcome, check.poll = Outcome.ERROR, False


@dataclass
class _Check:
    """One reconciliation between its database steps and its executor call (which may run alongside others')."""

    job: ExportJob
    now: object
    dry_run: bool
    progressed: bool = False
    outcome: Outcome | None = None  # decided before asking the executor
    poll: bool = False  # the executor must be asked
    state: CallState | ExecutorUnavailable | None = None


def _begin_check(check: _Check, *, trigger, budget) -> None:
    """Claim what is due, read the worker's progress; say whether the executor must be asked."""
    job, dry_run = check.job, check.dry_run
    if job.status in TERMINAL_STATUSES:
        check.outcome = Outcome.TERMINAL
        return
    claimed = {"progress_checked_at", "executor_checked_at"} if dry_run else _claim_due_checks(job, check.now)
    if "progress_checked_at" in claimed:
        check.progressed = _read_progress(job, trigger=trigger, budget=budget, now=check.now, dry_run=dry_run)
    progressed = Outcome.PROGRESSED if check.progressed else Outcome.UNCHANGED
    if "executor_checked_at" not in claimed:
        check.outcome = progressed
    elif job.call_id:
        check.poll = True
    elif not is_stale(job, now=check.now):
        check.outcome = progressed


def _conclude_check(check: _Check, *, trigger, budget) -> Outcome:
    """Decide from the executor's answer (or the lack of a call) and apply it."""
    job, now, dry_run = check.job, check.now, check.dry_run
    if check.outcome is not None:
        return check.outcome
    if not check.poll:  # no call id, and stale
        if job.cancel_requested_at:
            decision = Decision(Outcome.CANCELLED, message="Cancelled before it started.")
        else:
            decision = Decision(Outcome.LOST, reason=ErrorReason.LOST, message=lost_message(job, None))
    else:
        state = check.state
        if isinstance(state, ExecutorUnavailable):
            logger.info("Executor unavailable for job %s (%s): %s", job.pk, job.call_id, state)
            return Outcome.UNAVAILABLE
        stored = None
        if state.status in (CallStatus.EXPIRED, CallStatus.UNKNOWN):
            stored = records.read_result(job.pk)
        decision = decide(job, state, stored_result=stored, now=now)
        if state.status is CallStatus.RUNNING and job.cancel_requested_at and not dry_run:
            _send_cancel(job, budget=budget)  # the first cancel may not have reached the executor
        if state.status is CallStatus.RUNNING and not dry_run:
            _show_waiting(job, state)
    if dry_run or decision.outcome is Outcome.UNCHANGED:
        return Outcome.PROGRESSED if check.progressed and decision.outcome is Outcome.UNCHANGED else decision.outcome
    return _apply(job, decision, trigger=trigger)


CHECK_INTERVALS = {
    "progress_checked_at": lambda: settings.EXPORTS_PROGRESS_INTERVAL_SECONDS,
    "executor_checked_at": lambda: settings.EXPORTS_EXECUTOR_INTERVAL_SECONDS,
}


def _claim_due_checks(job: ExportJob, now) -> set[str]:
    """
    Claim the checks that are due; return the names of their fields.

    The row as loaded already tells which checks cannot be due (checked-at
    times only move forward), so those cost no query; when both look due one
    UPDATE claims both, and only if someone else got there first are they
    claimed one by one.
    """
    cutoffs = {field: now - timedelta(seconds=interval()) for field, interval in CHECK_INTERVALS.items()}
    due = [field for field, cutoff in cutoffs.items() if getattr(job, field) is None or getattr(job, field) <= cutoff]
    if len(due) > 1 and _claim(job, due, cutoffs, now):
        return set(due)
    return {field for field in due if _claim(job, [field], cutoffs, now)}


def _claim(job: ExportJob, fields: list[str], cutoffs: dict, now) -> bool:
    condition = Q(pk=job.pk, status__in=ACTIVE_STATUSES)
    for field in fields:
        condition &= Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lte": cutoffs[field]})
    if ExportJob.objects.filter(condition).update(**dict.fromkeys(fields, now)) != 1:
        return False
    for field in fields:
        setattr(job, field, now)
    return True


def _read_progress(job: ExportJob, *, trigger, budget, now, dry_run: bool) -> bool:
    """Store the worker's latest record on the row if it changed; adopt its call id if we have none."""
    record = records.read_progress(job.pk)
    if record is None:
        return False
    if dry_run:
        return record.worker_time != job.progress_at
    adopted = False
    if not job.call_id and record.call_id and get_executor().is_call_id(record.call_id):
        adopted = record_call_id(job, record.call_id, trigger=trigger, event=Event.CALL_ID_ADOPTED, budget=budget)
    if record.worker_time == job.progress_at:
        return adopted
    shown = min(record.percent, 99)  # 100 only once finalized
    changed = (
        ExportJob.objects.filter(pk=job.pk, status__in=ACTIVE_STATUSES)
        .exclude(progress_at=record.worker_time)
        .update(
            progress=Greatest(F("progress"), shown),
            stage=record.stage,
            message=record.message,
            progress_at=record.worker_time,
            remaining_seconds=record.remaining_seconds,
            heartbeat_seen_at=now,
            updated_at=now,
        )
    )
    if not changed:
        return adopted
    crossed = [mark for mark in PROGRESS_MILESTONES if job.progress < mark <= shown]
    if crossed:
        record_event(job, Event.PROGRESS, trigger=trigger, message=f"{crossed[-1]} %", data={"percent": shown})
    broadcast_job_on_commit(job.pk, while_active=True)
    job.progress = max(job.progress, shown)
    job.stage, job.message = record.stage, record.message
    job.progress_at, job.heartbeat_seen_at = record.worker_time, now
    job.remaining_seconds = record.remaining_seconds
    return True


def _show_waiting(job: ExportJob, state: CallState) -> None:
    """
    Before the worker's first record, say what the executor knows: queued, with how many ahead. Otherwise there
    is nothing to write (pages say "Starting" while a job has no stage), so a pass over thousands of running
    jobs costs no query for it; only a job leaving the queue is cleared back to that.
    """
    if job.progress_at is not None:
        return  # the worker speaks for itself now
    if state.queued_ahead is None:
        if job.stage != "queued":
            return
        stage, message = "", ""
    elif state.queued_ahead == 0:
        stage, message = "queued", "Queued: next to start"
    else:
        ahead = state.queued_ahead
        stage, message = "queued", f"Queued: {ahead} export{'s' if ahead != 1 else ''} ahead"
    if (job.stage, job.message) == (stage, message):
        return
    now = timezone.now()
    shown = (
        ExportJob.objects.filter(pk=job.pk, status__in=ACTIVE_STATUSES, progress_at__isnull=True)
        .exclude(stage=stage, message=message)
        .update(stage=stage, message=message, updated_at=now)
    )
    if shown:
        job.stage, job.message = stage, message
        broadcast_job_on_commit(job.pk, while_active=True)


def _send_cancel(job: ExportJob, *, budget) -> None:
    try:
        get_executor().cancel(job.call_id, budget=budget)
    except ExecutorUnavailable as error:
        logger.info("Cancel of job %s not delivered yet: %s", job.pk, error)


def _apply(job: ExportJob, decision: Decision, *, trigger) -> Outcome:
    if decision.outcome is Outcome.COMPLETED:
        return finalize(job, decision.result, trigger=trigger)
    if decision.outcome is Outcome.CANCELLED:
        done = transition(job, ExportStatus.CANCELLED, trigger=trigger, event=Event.CANCELLED, message=decision.message)
    else:
        done = fail(job, decision.reason, decision.message, trigger=trigger, **_finish_fields(job, decision.result))
    if done and job.project.deleted_at:
        purge_project_if_idle(job.project)
    return decision.outcome if done else Outcome.UNCHANGED


def _finish_fields(job: ExportJob, result: ExportResult | None) -> dict:
    """finished_at from the worker's result, and for the timeline both times: the worker's and when we learned it."""
    reported = result.finished_at if result is not None else None
    if reported is None:
        return {}
    now = timezone.now()
    return {
        "finished_at": job.finish_time(reported, now=now),
        "event_data": {"worker_finished_at": isoformat(reported), "noticed_at": isoformat(now)},
    }


def finalize(job: ExportJob, result: ExportResult, *, trigger) -> Outcome:
    """Create the WorkingVideo and complete the job, exactly once, whoever else is trying at the same time."""
    expected_key = job_key(str(job.pk), OUTPUT)
    if result.output_key != expected_key or object_store().size(expected_key) is None:
        done = fail(job, ErrorReason.FAILED, "The worker reported success but its output is missing.", trigger=trigger)
        return Outcome.FAILED if done else Outcome.UNCHANGED
    try:
        with transaction.atomic():
            locked = ExportJob.objects.select_for_update().get(pk=job.pk)
            if locked.status not in ACTIVE_STATUSES:
                return Outcome.UNCHANGED
            WorkingVideo.objects.create(
                project_id=locked.project_id,
                export_job=locked,
                media=expected_key,
                duration=result.duration,
                width=result.width,
                height=result.height,
                size=result.size,
            )
            message = "Export complete."
            if locked.cancel_requested_at:
                message = "The export finished before the cancel reached it."
            finish = _finish_fields(locked, result)
            facts = result.render_facts() | finish.pop("event_data", {})
            transition(
                locked,
                ExportStatus.COMPLETE,
                trigger=trigger,
                event=Event.COMPLETED,
                message=message,
                event_data=facts,
                progress=100,
                stage="done",
                **finish,
            )
    except IntegrityError:
        return Outcome.UNCHANGED  # another reconciliation created the WorkingVideo first
    job.refresh_from_db()
    return Outcome.COMPLETED


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
        _send_cancel(job, budget=budget)
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


def purge_project_if_idle(project: Project) -> bool:
    """Delete a deleted project's rows and stored objects once none of its exports is active."""
    if project.deleted_at is None or ExportJob.objects.active().filter(project=project).exists():
        return False
    clip_names = [clip.media.name for clip in project.clips.all()]
    job_ids = list(ExportJob.objects.filter(project=project).values_list("pk", flat=True))
    with transaction.atomic():
        Project.objects.filter(pk=project.pk, deleted_at__isnull=False).delete()
    for name in clip_names:
        default_storage.delete(name)
    store = object_store()
    for job_id in job_ids:
        for name in (*RECORDS, OUTPUT):
            store.delete(job_key(str(job_id), name))
    return True


def purge_deleted_projects() -> int:
    return sum(purge_project_if_idle(project) for project in Project.objects.deleted())


def reconcile_owner_jobs(owner, *, trigger=Trigger.VIEW) -> None:
    """The lazy check behind pages and the API: all the user's active jobs."""
    reconcile_jobs(ExportJob.objects.started_by(owner), trigger=trigger)


def mark_as_error(job: ExportJob, *, actor, message: str = "", budget: Budget | None = None) -> bool:
    """An admin ends a job as an error; its call is cancelled too, so nothing keeps running for nobody."""
    reason = message or f"Marked as error by {actor.get_username()}."
    changed = fail(job, ErrorReason.ADMIN, reason, trigger=Trigger.ADMIN, actor=actor)
    if changed and job.call_id:
        _send_cancel(job, budget=budget)
    return changed

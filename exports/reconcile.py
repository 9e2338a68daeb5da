"""
Reconciliation: bring a job's row in line with its worker's records and its executor call.

One mechanism, three triggers (a page or API request, an open socket's tick,
`reconcile_exports`), and one entry: `reconcile_jobs` (`reconcile_job` is it
for one job). Each check claims what is due with a conditional update on its
own checked-at time, so however many viewers look, the progress record is read
and the executor asked about once per interval; then `decide` maps what the
executor said (or that there is no call to ask about) to an outcome, and the
outcome is applied as one conditional transition. The state rules it relies on
(allowed transitions, when a job is stale, the lost message) are ExportJob's.
"""

from __future__ import annotations

import enum
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from exports_project.http import isoformat
from modal_jobs.executors import CallState, CallStatus, ExecutorUnavailable
from modal_jobs.progress import HEARTBEAT_SECONDS
from modal_jobs.records import OUTPUT, ExportResult, ProgressRecord, WorkerEvent, job_key

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
from .pruning import purge_project_if_idle
from .services import fail, record_call_id, record_event, send_cancel, transition
from .storage import object_store

logger = logging.getLogger(__name__)
Event = ExportJobEvent.Kind
PROGRESS_MILESTONES = (25, 50, 75)


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


@dataclass(frozen=True)
class Decision:
    """What the executor's answer (and the stored result) mean for the job."""

    outcome: Outcome
    result: ExportResult | None = None
    reason: ErrorReason | None = None
    message: str = ""


def decide(job: ExportJob, state: CallState | None, *, stored_result: ExportResult | None, now) -> Decision:
    """
    Every outcome rule: the executor's answer (None when the job has no call to ask about) and, where the
    executor cannot vouch for the call, the stored result, mapped to what happens to the job. Pure, so the
    command's dry run uses it as is.
    """
    if state is None:  # never spawned, or the spawn's reply was lost and no worker has spoken since
        if not job.is_stale(now):
            return Decision(Outcome.UNCHANGED)
        if job.cancel_requested_at:
            return Decision(Outcome.CANCELLED, message="Cancelled before it started.")
        return Decision(Outcome.LOST, reason=ErrorReason.LOST, message=job.lost_message(None))
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
    if job.is_stale(now):
        return Decision(Outcome.LOST, reason=ErrorReason.LOST, message=job.lost_message(state.status))
    return Decision(Outcome.UNCHANGED)


def reconcile_job(job: ExportJob, *, trigger, budget: Budget | None = None, dry_run: bool = False, now=None) -> Outcome:
    """Reconcile one job (see reconcile_jobs) and return what happened to it."""
    return reconcile_jobs([job], trigger=trigger, budget=budget, dry_run=dry_run, now=now)[0][1]


def reconcile_jobs(
    jobs, *, trigger, budget: Budget | None = None, dry_run: bool = False, now=None
) -> list[tuple[ExportJob, Outcome]]:
    """
    Reconcile each job, asking the executor about all of them at once; return (job, outcome) pairs.

    A page whose owner has twenty running exports then waits one round trip
    to the executor, not twenty; reconcile_exports keeps many calls in flight
    with few database threads. One job whose check fails (logged) ends as
    Outcome.ERROR and costs the others nothing. A dry run claims nothing and
    writes nothing; it reports what a real run would do. The jobs are updated
    in place, so `job.is_active` afterwards tells which are still running.
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
    poll: bool = False  # the executor check is due and there is a call to ask about
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
    if "executor_checked_at" not in claimed:
        check.outcome = Outcome.PROGRESSED if check.progressed else Outcome.UNCHANGED
    else:
        check.poll = bool(job.call_id)  # without a call, decide() rules on the job alone


def _conclude_check(check: _Check, *, trigger, budget) -> Outcome:
    """Decide from the executor's answer (or the lack of a call) and apply it."""
    job, now, dry_run = check.job, check.now, check.dry_run
    if check.outcome is not None:
        return check.outcome
    state = check.state
    if isinstance(state, ExecutorUnavailable):
        logger.info("Executor unavailable for job %s (%s): %s", job.pk, job.call_id, state)
        return Outcome.UNAVAILABLE
    stored = None
    if state is not None and state.status in (CallStatus.EXPIRED, CallStatus.UNKNOWN):
        stored = records.read_result(job.pk)
    decision = decide(job, state, stored_result=stored, now=now)
    if state is not None and state.status is CallStatus.RUNNING and not dry_run:
        if job.cancel_requested_at:
            send_cancel(job, budget=budget)  # the first cancel may not have reached the executor
        _show_waiting(job, state)
    if dry_run or decision.outcome is Outcome.UNCHANGED:
        return Outcome.PROGRESSED if check.progressed and decision.outcome is Outcome.UNCHANGED else decision.outcome
    return _apply(job, decision, trigger=trigger)


CHECK_INTERVALS = {
    "progress_checked_at": lambda: settings.EXPORTS_PROGRESS_INTERVAL_SECONDS,
    "executor_checked_at": lambda: settings.EXPORTS_EXECUTOR_INTERVAL_SECONDS,
}
# A worker sends a progress event at least every heartbeat: quieter than this, its events have stopped.
EVENTS_QUIET = timedelta(seconds=HEARTBEAT_SECONDS * 1.5)


def check_intervals(job: ExportJob, now) -> dict[str, float]:
    """
    Seconds between checks of each kind: while the worker's events arrive, looks are only a safety net. Not
    while a cancel waits: a stopped worker sends no result, and only the executor can confirm the cancel.
    """
    intervals = {field: interval() for field, interval in CHECK_INTERVALS.items()}
    events_arrive = job.events_seen_at is not None and now - job.events_seen_at < EVENTS_QUIET
    if events_arrive and job.cancel_requested_at is None:
        # Half the export's age, at least the setting: a long export costs a handful of checks, not one a minute.
        age = (now - (job.started_at or job.created_at)).total_seconds()
        backoff = max(settings.EXPORTS_EVENTS_BACKOFF_SECONDS, age / 2)
        return {field: max(seconds, backoff) for field, seconds in intervals.items()}
    return intervals


def _claim_due_checks(job: ExportJob, now) -> set[str]:
    """
    Claim the checks that are due; return the names of their fields.

    The row as loaded already tells which checks cannot be due (checked-at
    times only move forward), so those cost no query; when both look due one
    UPDATE claims both, and only if someone else got there first are they
    claimed one by one.
    """
    cutoffs = {field: now - timedelta(seconds=seconds) for field, seconds in check_intervals(job, now).items()}
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
    return _store_progress(job, record, trigger=trigger, budget=budget, now=now)


def _store_progress(job: ExportJob, record: ProgressRecord, *, trigger, budget, now, **also) -> bool:
    """
    Put the record on the row if it is newer than what the row shows (percent never goes backwards), with
    `also` (more fields) in the same update.
    """
    adopted = False
    if not job.call_id and record.call_id and get_executor().is_call_id(record.call_id):
        adopted = record_call_id(job, record.call_id, trigger=trigger, event=Event.CALL_ID_ADOPTED, budget=budget)
    if job.progress_at is not None and record.worker_time <= job.progress_at:
        return adopted  # the same record, or an older one arriving late
    shown = min(record.percent, 99)  # 100 only once finalized
    changed = (
        ExportJob.objects.filter(pk=job.pk, status__in=ACTIVE_STATUSES)
        .filter(Q(progress_at__isnull=True) | Q(progress_at__lt=record.worker_time))
        .update(
            progress=Greatest(F("progress"), shown),
            stage=record.stage,
            message=record.message,
            progress_at=record.worker_time,
            remaining_seconds=record.remaining_seconds,
            heartbeat_seen_at=now,
            updated_at=now,
            **also,
        )
    )
    if not changed:
        return adopted
    crossed = [mark for mark in PROGRESS_MILESTONES if job.progress < mark <= shown]
    if crossed:
        record_event(job, Event.PROGRESS, trigger=trigger, message=f"{crossed[-1]} %", data={"percent": shown})
    broadcast_job_on_commit(job.pk, while_active=True, from_worker=trigger == Trigger.WORKER)
    job.progress = max(job.progress, shown)
    job.stage, job.message = record.stage, record.message
    job.progress_at, job.heartbeat_seen_at = record.worker_time, now
    job.remaining_seconds = record.remaining_seconds
    for name, value in also.items():
        setattr(job, name, value)
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


def take_event(job: ExportJob, event: WorkerEvent, *, now=None) -> Outcome:
    """
    A worker's event (exports/events.py checked it): its progress record or its result, taken by the
    same rules as a look, so an event out of order, twice or after the job ended changes nothing wrong.
    """
    now = now or timezone.now()
    if job.status in TERMINAL_STATUSES:
        return Outcome.TERMINAL
    if event.record is not None:
        stored = _store_progress(job, event.record, trigger=Trigger.WORKER, budget=None, now=now, events_seen_at=now)
        return Outcome.PROGRESSED if stored else Outcome.UNCHANGED
    decision = decide(job, CallState.of(event.result), stored_result=None, now=now)
    return _apply(job, decision, trigger=Trigger.WORKER)

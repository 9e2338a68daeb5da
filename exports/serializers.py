"""The one JSON shape of a job, shared by the API, the socket, broadcasts and the tray's bars."""

from django.utils import timezone

from exports_project.http import isoformat

from .models import ACTIVE_STATUSES, ExportJob, ExportStatus, WorkingVideo

# What a bar can show under it, in the order shown: bar.html draws one element for each (data-control), and
# exports.js clones those of a job's "controls" from the drawing rendered blank into the page.
CONTROLS = ("download", "open", "cancel", "cancelling", "retry", "dismiss")


def serialize_job(job: ExportJob) -> dict:
    """Callers load what it reads with ExportJob.objects.for_serializing()."""
    try:
        video = job.working_video
    except WorkingVideo.DoesNotExist:
        video = None
    return {
        "id": str(job.pk),
        "kind": job.kind,
        "kind_label": job.get_kind_display(),
        "params": job.params,
        "status": job.status,
        "progress": job.progress,
        "stage": job.stage,
        "message": job.message,
        "display_message": display_message(job),
        "progress_at": isoformat(job.progress_at),
        "remaining_seconds": _rounded(job.remaining_seconds_at(timezone.now())),
        "project_id": job.project_id,
        "project_name": job.project.name,
        "created_at": isoformat(job.created_at),
        "updated_at": isoformat(job.updated_at),
        "finished_at": isoformat(job.finished_at),
        "cancel_requested": job.cancel_requested_at is not None,
        "error": {"reason": job.error_reason, "message": job.error_for_user} if job.error_reason else None,
        "working_video": video.as_json() if video else None,
        "retry_id": str(job.retried_as_id) if job.retried_as_id else None,
        "controls": controls(job, video),
    }


def display_message(job: ExportJob) -> str:
    """The line a bar shows under its track: the one place that words a job's state for its owner."""
    if job.status == ExportStatus.ERROR:
        return job.error_for_user or "Failed."
    if job.status == ExportStatus.CANCELLED:
        return "Cancelled."
    if job.status == ExportStatus.COMPLETE:
        return "Done."
    if job.cancel_requested_at is not None:
        return "Cancelling…"
    # The worker's own words, or the executor's queue place; "Starting…" until either says anything.
    return job.message or job.stage or "Starting…"


def controls(job: ExportJob, video: WorkingVideo | None) -> list[str]:
    """Which of CONTROLS a bar shows for the job, in CONTROLS' order."""
    shown = set()
    if job.status == ExportStatus.COMPLETE and video is not None:
        shown |= {"download", "open"}
    if job.status in ACTIVE_STATUSES:
        shown.add("cancelling" if job.cancel_requested_at is not None else "cancel")
    else:
        shown.add("dismiss")
        if job.status != ExportStatus.COMPLETE and job.retried_as_id is None:
            shown.add("retry")
    return [control for control in CONTROLS if control in shown]


def blank_bar() -> dict:
    """A job's JSON that bar.html draws with every control and nothing filled in: the <template> pages clone."""
    return {"id": "", "status": "", "progress": 0, "display_message": "", "controls": list(CONTROLS)}


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)

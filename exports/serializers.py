"""The one JSON shape of a job, shared by the API, the socket and broadcasts."""

from django.utils import timezone

from exports_project.http import isoformat

from .models import ExportJob, WorkingVideo


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
    }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)

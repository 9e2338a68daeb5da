"""
Storage hygiene for exports: delete what finished jobs and deleted projects no longer need, report what
does not add up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from modal_jobs.records import OUTPUT, RECORDS, job_key
from projects.models import Project

from .models import ExportJob, ExportStatus, WorkingVideo
from .storage import object_store


@dataclass
class PruneReport:
    deleted: list[str] = field(default_factory=list)
    kept_in_use: list[str] = field(default_factory=list)
    jobs_pruned: int = 0
    orphans: list[str] = field(default_factory=list)
    videos_missing_objects: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def prune_exports(*, retention_days: float, dry_run: bool = False, now=None) -> PruneReport:
    """
    Delete the progress and result records of jobs finished more than `retention_days` ago, and the
    output of those that failed or were cancelled. Never an object a WorkingVideo uses, never anything
    of an active job. Report objects under exports/ that belong to no job, and WorkingVideos whose
    object is missing.
    """
    report = PruneReport()
    store = object_store()
    cutoff = (now or timezone.now()) - timedelta(days=retention_days)
    in_use = set(WorkingVideo.objects.values_list("media", flat=True))
    due = ExportJob.objects.terminal().filter(finished_at__lt=cutoff, records_pruned_at__isnull=True)
    for job_id, status in due.values_list("pk", "status").iterator():
        names = [*RECORDS, OUTPUT] if status in (ExportStatus.ERROR, ExportStatus.CANCELLED) else RECORDS
        try:
            for key in job_objects(store, job_id, names):
                if key in in_use:
                    report.kept_in_use.append(key)
                elif store.size(key) is not None:
                    report.deleted.append(key)
                    if not dry_run:
                        store.delete(key)
        except Exception as error:  # one unreachable object must not stop the rest; it is reported
            report.errors.append(f"job {job_id}: {error}")
            continue
        report.jobs_pruned += 1
        if not dry_run:
            ExportJob.objects.filter(pk=job_id).update(records_pruned_at=timezone.now())

    known = {str(job_id) for job_id in ExportJob.objects.values_list("pk", flat=True)}
    try:
        report.orphans = [key for key in store.list_keys("exports/") if key.split("/")[1] not in known]
        for video_id, key in WorkingVideo.objects.values_list("pk", "media"):
            if store.size(key) is None:
                report.videos_missing_objects.append(video_id)
    except Exception as error:
        report.errors.append(f"listing the store: {error}")
    return report


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
        for key in job_objects(store, job_id, (*RECORDS, OUTPUT)):
            store.delete(key)
    return True


def job_objects(store, job_id, names) -> list[str]:
    """
    The keys of the job's objects `names`, and of whatever a chunked render left under chunks/ (it crashed,
    failed or was cancelled before deleting them; modal_jobs/chunks.py).
    """
    return [*(job_key(str(job_id), name) for name in names), *store.list_keys(job_key(str(job_id), "chunks/"))]


def purge_deleted_projects() -> int:
    return sum(purge_project_if_idle(project) for project in Project.objects.deleted())

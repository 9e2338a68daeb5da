"""Business rules of projects and their clips."""

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import Max

from modal_jobs.media import UPLOAD_CONTAINERS, UploadLimits, probe_upload

from .models import DEFAULT_CONTAINER_TYPE, Clip, Project


def create_project(*, owner, name: str) -> Project:
    return Project.objects.create(owner=owner, name=name)


def upload_limits() -> UploadLimits:
    return UploadLimits(
        max_side=settings.CLIP_MAX_SIDE,
        max_frame_pixels=settings.CLIP_MAX_FRAME_PIXELS,
        max_pixel_rate=settings.CLIP_MAX_PIXEL_RATE,
        memory_bytes=settings.CLIP_PROBE_MEMORY_BYTES,
        seconds=settings.CLIP_PROBE_SECONDS,
    )


def add_clip(*, project: Project, path: str, original_name: str = "") -> Clip:
    """
    Probe the video at `path` and store it as the project's last clip.

    Raises `modal_jobs.media.MediaProbeError`, with a message meant for the user,
    before anything is stored when the file is not a readable video.
    """
    info = probe_upload(path, upload_limits())
    extension, content_type = UPLOAD_CONTAINERS.get(info.container, DEFAULT_CONTAINER_TYPE)
    clip = Clip(
        project=project,
        original_name=original_name[:255],
        content_type=content_type,
        duration=info.duration,
        width=info.display_width,
        height=info.display_height,
        has_audio=info.has_audio,
    )
    with open(path, "rb") as video:
        clip.media.save(f"clip{extension}", File(video), save=False)
    clip.size = clip.media.size
    try:
        with transaction.atomic():
            Project.objects.select_for_update().filter(pk=project.pk).exists()  # serialize appends per project
            highest = project.clips.aggregate(highest=Max("order"))["highest"]
            clip.order = 0 if highest is None else highest + 1
            clip.save()
    except BaseException:
        clip.media.delete(save=False)  # no stored object without its row
        raise
    return clip

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse

from modal_jobs.media import UPLOAD_CONTAINERS

DEFAULT_CONTAINER_TYPE = (".video", "application/octet-stream")


def clip_storage_key(clip: "Clip", filename: str) -> str:
    """Return a storage key built from ids only: user-supplied names never reach storage."""
    extension = filename[filename.rfind(".") :] if "." in filename else ""
    if extension not in {ext for ext, _ in UPLOAD_CONTAINERS.values()}:
        extension = DEFAULT_CONTAINER_TYPE[0]
    return f"projects/{clip.project_id}/clips/{uuid.uuid4().hex}{extension}"


class ProjectQuerySet(models.QuerySet):
    def owned_by(self, user):
        """The user's projects, minus those deleted (hidden at once, purged once their exports stopped)."""
        return self.filter(owner=user, deleted_at__isnull=True)

    def deleted(self):
        return self.filter(deleted_at__isnull=False)


class Project(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="Hidden from its owner; purged soon.")

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("projects:detail", args=[self.pk])


class ClipQuerySet(models.QuerySet):
    def owned_by(self, user):
        return self.filter(project__owner=user, project__deleted_at__isnull=True)


class Clip(models.Model):
    """A source video of a project; its metadata is probed from the file, never trusted from the client."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="clips")
    media = models.FileField(upload_to=clip_storage_key, max_length=255)
    original_name = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=64, default="video/mp4")
    order = models.PositiveIntegerField(default=0)
    duration = models.FloatField(help_text="Seconds.")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    has_audio = models.BooleanField()
    size = models.BigIntegerField(help_text="Bytes.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ClipQuerySet.as_manager()

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(duration__gt=0), name="clip_duration_positive"),
            models.CheckConstraint(condition=models.Q(width__gt=0, height__gt=0), name="clip_size_positive"),
        ]

    def __str__(self):
        return self.original_name or f"Clip {self.pk}"

    def get_media_url(self):
        return reverse("projects:clip_media", args=[self.project_id, self.pk])

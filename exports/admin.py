"""
The admin's view of exports: one screen that says why a job is where it is, and actions that fix what can be.

Actions go through exports.services (so they land on the job's timeline with the admin as actor);
nothing here changes a job's state directly.
"""

import json
from datetime import timedelta

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from modal_jobs.executors import ExecutorUnavailable
from modal_jobs.schema import InvalidParams
from projects.admin import ProjectAdmin
from projects.media import media_response
from projects.models import Project

from . import records, services
from .executor import Budget, get_executor
from .models import ExportJob, ExportJobEvent, ExportStatus, Trigger, WorkingVideo

ADMIN_EXECUTOR_BUDGET_SECONDS = 2.0


class SuspectFilter(admin.SimpleListFilter):
    title = "suspect"
    parameter_name = "suspect"

    def lookups(self, request, model_admin):
        return [("yes", f"Silent for over {settings.EXPORTS_SUSPECT_MINUTES:g} min")]

    def queryset(self, request, queryset):
        if self.value() != "yes":
            return queryset
        cutoff = timezone.now() - timedelta(minutes=settings.EXPORTS_SUSPECT_MINUTES)
        silent = Q(heartbeat_seen_at__lt=cutoff) | Q(heartbeat_seen_at__isnull=True, created_at__lt=cutoff)
        return queryset.filter(silent, status__in=[ExportStatus.PENDING, ExportStatus.PROCESSING])


class ReadOnlyInline(admin.TabularInline):
    """A record written by the services only: shown, never added, edited or deleted by hand."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ExportJobEventInline(ReadOnlyInline):
    model = ExportJobEvent
    fields = ["created_at", "kind", "trigger", "actor", "message", "data"]
    readonly_fields = fields
    ordering = ["created_at", "id"]


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "progress_bar",
        "owner",
        "project",
        "modal_call_id",
        "age",
        "heartbeat_age",
        "executor_checked_at",
    ]
    list_filter = ["status", "kind", "backend", "error_reason", SuspectFilter]
    list_select_related = ["owner", "project"]
    search_fields = ["id", "modal_call_id", "owner__username", "project__name"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    inlines = [ExportJobEventInline]
    actions = ["reconcile_now", "cancel_on_executor", "retry", "mark_as_error"]
    fieldsets = [
        (None, {"fields": ["id", "owner", "project", "kind", "backend", "modal_call_id", "status", "progress"]}),
        ("Worker", {"fields": ["stage", "message", "progress_at", "heartbeat_seen_at", "progress_record"]}),
        ("Executor", {"fields": ["executor_state", "call_logs", "executor_checked_at", "progress_checked_at"]}),
        ("Outcome", {"fields": ["error_reason", "error_message", "cancel_requested_at", "dismissed_at"]}),
        ("Parameters", {"fields": ["pretty_params"]}),
        ("Times", {"fields": ["created_at", "updated_at", "started_at", "finished_at"]}),
    ]
    readonly_fields = [field.name for field in ExportJob._meta.fields] + [
        "pretty_params",
        "progress_record",
        "executor_state",
        "call_logs",
    ]

    def has_add_permission(self, request):
        return False

    @admin.display(description="progress", ordering="progress")
    def progress_bar(self, job):
        return format_html('<progress value="{}" max="100"></progress> {} %', job.progress, job.progress)

    @admin.display(description="age", ordering="created_at")
    def age(self, job):
        return timesince(job.created_at)

    @admin.display(description="last heartbeat", ordering="heartbeat_seen_at")
    def heartbeat_age(self, job):
        return f"{timesince(job.heartbeat_seen_at)} ago" if job.heartbeat_seen_at else "never"

    @admin.display(description="params")
    def pretty_params(self, job):
        return format_html("<pre>{}</pre>", json.dumps(job.params, indent=2, sort_keys=True))

    @admin.display(description="progress record")
    def progress_record(self, job):
        try:
            raw = records.read_record(job.pk, "progress.json")
        except Exception as error:  # shown, not raised: the page must render when storage fails
            return format_html('<span class="errornote">Could not read it: {}</span>', error)
        if raw is None:
            return "none written yet"
        try:
            shown = json.dumps(json.loads(raw), indent=2, sort_keys=True)
        except ValueError:
            shown = raw[:2000].decode(errors="replace")
        return format_html("<pre>{}</pre>", shown)

    @admin.display(description="executor says (live)")
    def executor_state(self, job):
        if not job.modal_call_id:
            return "no call id yet"
        try:
            state = get_executor().poll(job.modal_call_id, budget=Budget(ADMIN_EXECUTOR_BUDGET_SECONDS))
        except ExecutorUnavailable as error:
            return format_html('<span class="errornote">Unavailable: {}</span>', error)
        return format_html("<strong>{}</strong> {}", state.status, state.message)

    @admin.display(description="call's logs")
    def call_logs(self, job):
        if not job.modal_call_id:
            return "no call id yet"
        # A link, not the logs: fetching them takes up to a deadline, which this page should not wait for.
        url = reverse("admin:exports_exportjob_logs", args=[job.pk])
        return format_html('<a href="{}">The last lines the call printed</a>', url)

    def get_urls(self):
        logs = self.admin_site.admin_view(self.logs_view)
        return [path("<uuid:job_id>/logs/", logs, name="exports_exportjob_logs"), *super().get_urls()]

    def logs_view(self, request, job_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = get_object_or_404(ExportJob, pk=job_id)
        logs, problem = "", ""
        try:
            logs = get_executor().logs(job.modal_call_id, budget=Budget(ADMIN_EXECUTOR_BUDGET_SECONDS))
        except ExecutorUnavailable as error:
            problem = str(error)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "job": job,
            "title": f"Logs of {job.modal_call_id or 'no call'}",
            "logs": logs,
            "problem": problem,
        }
        return TemplateResponse(request, "admin/exports/exportjob/logs.html", context)

    @admin.action(description="Reconcile now", permissions=["change"])
    def reconcile_now(self, request, queryset):
        budget = Budget(settings.EXPORTS_REQUEST_BUDGET_SECONDS * 5)
        outcomes = [
            services.reconcile_job(job, trigger=Trigger.ADMIN, budget=budget)
            for job in queryset.select_related("project")
        ]
        summary = ", ".join(f"{outcome}: {outcomes.count(outcome)}" for outcome in sorted(set(outcomes)))
        self.message_user(request, f"Reconciled {len(outcomes)} job(s) — {summary}.")

    @admin.action(description="Cancel on the executor", permissions=["change"])
    def cancel_on_executor(self, request, queryset):
        jobs = list(queryset.active())
        for job in jobs:
            services.cancel_export(job, trigger=Trigger.ADMIN, actor=request.user, budget=Budget(2))
        self.message_user(request, f"Asked the executor to cancel {len(jobs)} job(s); they end once it confirms.")

    @admin.action(description="Retry as a new job", permissions=["change"])
    def retry(self, request, queryset):
        for job in queryset.filter(status__in=[ExportStatus.ERROR, ExportStatus.CANCELLED]).select_related("project"):
            try:
                new_job = services.retry_export(job, trigger=Trigger.ADMIN, actor=request.user)
            except (services.ExportRefused, InvalidParams) as error:  # reported per job; the others still run
                self.message_user(request, f"{job.pk}: {error}", level=messages.ERROR)
            else:
                self.message_user(request, f"{job.pk} retried as {new_job.pk}.")

    @admin.action(description="Mark as error (and cancel the call)", permissions=["change"])
    def mark_as_error(self, request, queryset):
        changed = sum(services.mark_as_error(job, actor=request.user, budget=Budget(2)) for job in queryset.active())
        self.message_user(request, f"Marked {changed} job(s) as error.")


class WorkingVideoInline(ReadOnlyInline):
    model = WorkingVideo
    fields = ["export_job", "duration", "width", "height", "size", "created_at"]
    readonly_fields = fields


# The project admin lists working videos too; registered from here so that projects imports nothing of exports.
admin.site.unregister(Project)


@admin.register(Project)
class ProjectWithWorkingVideosAdmin(ProjectAdmin):
    inlines = [*ProjectAdmin.inlines, WorkingVideoInline]


@admin.register(WorkingVideo)
class WorkingVideoAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "export_job", "duration", "width", "height", "size", "created_at"]
    list_select_related = ["project", "export_job"]
    search_fields = ["project__name", "export_job__id"]
    readonly_fields = ["player", "project", "export_job", "media", "duration", "width", "height", "size", "created_at"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="video")
    def player(self, video):
        url = reverse("admin:exports_workingvideo_media", args=[video.pk])
        return format_html('<video controls preload="metadata" src="{}" style="max-width: 640px"></video>', url)

    def get_urls(self):
        media = self.admin_site.admin_view(self.media_view)
        return [path("<int:video_id>/media/", media, name="exports_workingvideo_media"), *super().get_urls()]

    def media_view(self, request, video_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        video = get_object_or_404(WorkingVideo.objects.select_related("project", "export_job"), pk=video_id)
        return media_response(request, video.media, content_type="video/mp4", filename=video.download_filename)

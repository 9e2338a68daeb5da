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
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from modal_jobs.executors import CallStatus, ExecutorUnavailable
from modal_jobs.records import PROGRESS
from modal_jobs.schema import InvalidParams
from projects.admin import ProjectAdmin
from projects.media import media_response
from projects.models import Project

from . import records, services
from .executor import Budget, get_executor
from .models import ExportJob, ExportJobEvent, ExportStatus, Trigger, WorkingVideo
from .reconcile import Outcome, reconcile_jobs

ADMIN_EXECUTOR_BUDGET_SECONDS = 2.0
# How each reconciliation outcome is reported to the admin who asked for it.
OUTCOME_LEVELS = {
    Outcome.COMPLETED: messages.SUCCESS,
    Outcome.CANCELLED: messages.SUCCESS,
    Outcome.FAILED: messages.WARNING,
    Outcome.TIMED_OUT: messages.WARNING,
    Outcome.LOST: messages.WARNING,
    Outcome.UNAVAILABLE: messages.ERROR,
    Outcome.ERROR: messages.ERROR,
}


def short_id(job_id) -> str:
    """The first 8 hex digits of a job's UUID: what the changelist and messages show (the full id in a title)."""
    return job_id.hex[:8]


def short_call_id(call_id: str) -> str:
    """A call id cut to its prefix ("local-", "fc-") and enough to tell calls apart, whole in a title; "-" if none."""
    if not call_id:
        return "-"
    shown = call_id if len(call_id) <= 15 else f"{call_id[:14]}…"
    return format_html('<span title="{}">{}</span>', call_id, shown)


def to_the_second(value):
    """A time as 2026-11-25 17:21:04 in the admin's time zone (named in the title), or the empty value."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', value.isoformat(), local.tzname(), f"{local:%Y-%m-%d %H:%M:%S}"
    )


def compact_age(value, *, suffix: str = "") -> str:
    """How long ago, in its largest unit ("42 s", "3 min", "5 h", "2 d"), the exact time in the title."""
    seconds = max(0, int((timezone.now() - value).total_seconds()))
    amount, unit = next(
        ((seconds // size, unit) for unit, size in (("d", 86400), ("h", 3600), ("min", 60)) if seconds >= size),
        (seconds, "s"),
    )
    exact = f"{timezone.localtime(value):%Y-%m-%d %H:%M:%S %Z}"
    return format_html('<span title="{}">{}&nbsp;{}{}</span>', exact, amount, unit, suffix)


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
    fields = ["time", "kind", "trigger", "actor", "text", "data"]
    readonly_fields = fields
    ordering = ["created_at", "id"]

    @admin.display(description="time")
    def time(self, event):
        # Events come seconds apart: the default format ("5:21 p.m.") made a whole timeline read alike.
        return to_the_second(event.created_at)

    @admin.display(description="message")
    def text(self, event):
        """
        The message, and for a progress milestone the percent its data holds: the event is recorded with the
        highest milestone crossed ("75 %") and the percent then shown (99), which must not read as a contradiction.
        """
        percent = event.data.get("percent") if isinstance(event.data, dict) else None
        if event.kind == ExportJobEvent.Kind.PROGRESS and percent is not None and event.message != f"{percent} %":
            return f"{event.message} (reached {percent} %)"
        return event.message or "-"


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = [
        "short_id",
        "kind",
        "status_and_progress",
        "owner",
        "project",
        "short_call_id",
        "age",
        "heartbeat_age",
        "executor_checked_age",
    ]
    list_filter = ["status", "kind", "backend", "error_reason", SuspectFilter]
    list_select_related = ["owner", "project"]
    search_fields = ["id", "call_id", "owner__username", "project__name"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    inlines = [ExportJobEventInline]
    actions = ["reconcile_now", "cancel_on_executor", "retry", "mark_as_error"]
    fieldsets = [
        (None, {"fields": ["id", "owner", "project", "kind", "backend", "call_id", "status", "progress"]}),
        (
            "Worker",
            {
                "fields": [
                    "stage",
                    "message",
                    "progress_at",
                    "remaining_seconds",
                    "heartbeat_seen_at",
                    "chunks",
                    "progress_record",
                ]
            },
        ),
        ("Executor", {"fields": ["executor_state", "call_logs", "executor_checked_at", "progress_checked_at"]}),
        ("Outcome", {"fields": ["error_reason", "error_message", "cancel_requested_at", "dismissed_at", "retried_as"]}),
        ("Parameters", {"fields": ["pretty_params"]}),
        ("Times", {"fields": ["created_at", "updated_at", "started_at", "finished_at"]}),
    ]
    readonly_fields = [field.name for field in ExportJob._meta.fields] + [
        "pretty_params",
        "chunks",
        "progress_record",
        "executor_state",
        "executor_state_view_only",
        "call_logs",
    ]

    def has_add_permission(self, request):
        return False

    def get_fieldsets(self, request, obj=None):
        """Staff who may not change jobs see the executor's answer without the Reconcile now button."""
        if self.has_change_permission(request, obj):
            return self.fieldsets
        return [
            (name, {**options, "fields": [self._view_only_fields.get(f, f) for f in options["fields"]]})
            for name, options in self.fieldsets
        ]

    _view_only_fields = {"executor_state": "executor_state_view_only"}

    # The changelist fits 1440 px beside the admin's sidebar and the filters: short ids, narrow bars, compact ages.

    @admin.display(description="id", ordering="id")
    def short_id(self, job):
        return format_html('<span title="{}">{}</span>', job.pk, short_id(job.pk))

    @admin.display(description="status", ordering="status")
    def status_and_progress(self, job):
        return format_html(
            '{}<br><progress value="{}" max="100" style="width: 4em"></progress>&nbsp;{}&nbsp;%',
            job.get_status_display(),
            job.progress,
            job.progress,
        )

    @admin.display(description="call", ordering="call_id")
    def short_call_id(self, job):
        return short_call_id(job.call_id)  # the whole id (and the search) stays exact

    @admin.display(description="age", ordering="created_at")
    def age(self, job):
        return compact_age(job.created_at)

    @admin.display(description="heartbeat", ordering="heartbeat_seen_at")
    def heartbeat_age(self, job):
        return compact_age(job.heartbeat_seen_at, suffix=" ago") if job.heartbeat_seen_at else "never"

    @admin.display(description="checked", ordering="executor_checked_at")
    def executor_checked_age(self, job):
        return compact_age(job.executor_checked_at, suffix=" ago") if job.executor_checked_at else "never"

    @admin.display(description="params")
    def pretty_params(self, job):
        return format_html("<pre>{}</pre>", json.dumps(job.params, indent=2, sort_keys=True))

    @admin.display(description="chunks")
    def chunks(self, job):
        """A chunked export's chunks as its worker last recorded them (modal_jobs/chunks.py)."""
        try:
            record = records.read_progress(job.pk)
        except Exception as error:  # shown, not raised: the page must render when storage fails
            return format_html('<span class="errornote">Could not read them: {}</span>', error)
        if record is None or not record.chunks:
            return "not rendered in chunks"
        rows = [(chunk, short_call_id(chunk.call_id)) for chunk in record.chunks]
        return render_to_string("admin/exports/exportjob/chunks.html", {"rows": rows, "count": len(rows)})

    @admin.display(description="progress record")
    def progress_record(self, job):
        try:
            raw = records.read_record(job.pk, PROGRESS)
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
        return self._executor_state(job, can_reconcile=True)

    @admin.display(description="executor says (live)")
    def executor_state_view_only(self, job):
        return self._executor_state(job, can_reconcile=False)

    def _executor_state(self, job, *, can_reconcile: bool):
        if not job.call_id:
            return "no call id yet"
        try:
            state = get_executor().poll(job.call_id, budget=Budget(ADMIN_EXECUTOR_BUDGET_SECONDS))
        except ExecutorUnavailable as error:
            return format_html('<span class="errornote">Unavailable: {}</span>', error)
        said = format_html("<strong>{}</strong> {}", state.status, state.message)
        if not (job.is_active and state.status is not CallStatus.RUNNING):
            return said
        # The call has ended (or is unknown) while the row still says it runs: nobody has reconciled it since.
        # The button belongs to the form in templates/admin/exports/exportjob/change_form.html: a form cannot
        # sit inside the change form.
        button = ""
        if can_reconcile:
            button = format_html(
                '<button type="submit" form="reconcile-now" class="button default">{}</button>', "Reconcile now"
            )
        return format_html(
            "{} — the job is still {} at {} %. {}",
            said,
            job.get_status_display(),
            job.progress,
            button,
        )

    @admin.display(description="call's logs")
    def call_logs(self, job):
        if not job.call_id:
            return "no call id yet"
        # A link, not the logs: fetching them takes up to a deadline, which this page should not wait for.
        url = reverse("admin:exports_exportjob_logs", args=[job.pk])
        return format_html('<a href="{}">The last lines the call printed</a>', url)

    def get_urls(self):
        logs = self.admin_site.admin_view(self.logs_view)
        reconcile = self.admin_site.admin_view(self.reconcile_view)  # staff only, CSRF-protected
        return [
            path("<uuid:job_id>/logs/", logs, name="exports_exportjob_logs"),
            path("<uuid:job_id>/reconcile/", reconcile, name="exports_exportjob_reconcile"),
            *super().get_urls(),
        ]

    def reconcile_view(self, request, job_id):
        """The job page's Reconcile now: the action's reconciliation for one job, then back to the page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = get_object_or_404(ExportJob.objects.select_related("project"), pk=job_id)
        if not self.has_change_permission(request, job):
            raise PermissionDenied
        [outcome] = self._reconcile([job])
        job.refresh_from_db()
        said = f"Reconciled {short_id(job.pk)}: {outcome} — the job is now {job.get_status_display()}"
        if job.is_active:
            said += f" at {job.progress} %"
        if job.error_message:
            said += f" ({Truncator(job.error_message).chars(300)})"  # the whole of it is on the page
        self.message_user(request, f"{said}.", level=OUTCOME_LEVELS.get(outcome, messages.INFO))
        return HttpResponseRedirect(reverse("admin:exports_exportjob_change", args=[job.pk]))

    def _reconcile(self, jobs) -> list:
        """The admin's one way to reconcile (the action and the job page's button): as everyone does, as an admin."""
        budget = Budget(settings.EXPORTS_REQUEST_BUDGET_SECONDS * 5)
        return [outcome for _, outcome in reconcile_jobs(jobs, trigger=Trigger.ADMIN, budget=budget)]

    def logs_view(self, request, job_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = get_object_or_404(ExportJob, pk=job_id)
        logs, problem = "", ""
        try:
            logs = get_executor().logs(job.call_id, budget=Budget(ADMIN_EXECUTOR_BUDGET_SECONDS))
        except ExecutorUnavailable as error:
            problem = str(error)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "job": job,
            "title": f"Logs of {job.call_id or 'no call'}",
            "logs": logs,
            "problem": problem,
        }
        return TemplateResponse(request, "admin/exports/exportjob/logs.html", context)

    @admin.action(description="Reconcile now", permissions=["change"])
    def reconcile_now(self, request, queryset):
        outcomes = self._reconcile(queryset.select_related("project"))
        summary = ", ".join(f"{outcome}: {outcomes.count(outcome)}" for outcome in sorted(set(outcomes)))
        self.message_user(request, f"Reconciled {len(outcomes)} job(s) — {summary}.")

    @admin.action(description="Cancel on the executor", permissions=["change"])
    def cancel_on_executor(self, request, queryset):
        jobs = list(queryset.active())
        for job in jobs:
            services.cancel_export(
                job, trigger=Trigger.ADMIN, actor=request.user, budget=Budget(ADMIN_EXECUTOR_BUDGET_SECONDS)
            )
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
        changed = sum(
            services.mark_as_error(job, actor=request.user, budget=Budget(ADMIN_EXECUTOR_BUDGET_SECONDS))
            for job in queryset.active()
        )
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

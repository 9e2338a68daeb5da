from django.contrib import admin

from .models import ExportJob, WorkingVideo


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "progress", "owner", "project", "modal_call_id", "created_at"]
    list_filter = ["status", "kind", "backend", "error_reason"]
    list_select_related = ["owner", "project"]
    search_fields = ["id", "modal_call_id", "owner__username", "project__name"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in ExportJob._meta.fields]


@admin.register(WorkingVideo)
class WorkingVideoAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "export_job", "duration", "width", "height", "size", "created_at"]
    list_select_related = ["project", "export_job"]
    readonly_fields = ["project", "export_job", "media", "duration", "width", "height", "size", "created_at"]

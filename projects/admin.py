from django.contrib import admin

from .models import Clip, Project


class ClipInline(admin.TabularInline):
    model = Clip
    extra = 0
    fields = ["order", "original_name", "duration", "width", "height", "has_audio", "size"]
    readonly_fields = ["original_name", "duration", "width", "height", "has_audio", "size"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "created_at", "updated_at"]
    list_select_related = ["owner"]
    search_fields = ["name", "owner__username"]
    inlines = [ClipInline]


@admin.register(Clip)
class ClipAdmin(admin.ModelAdmin):
    list_display = ["__str__", "project", "order", "duration", "width", "height", "has_audio"]
    list_select_related = ["project"]
    search_fields = ["original_name", "project__name"]
    readonly_fields = ["duration", "width", "height", "has_audio", "size", "content_type", "created_at"]

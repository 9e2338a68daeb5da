from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_safe

from projects.media import media_response

from .models import ExportJob, WorkingVideo

HISTORY_PAGE_SIZE = 25


@login_required
@require_GET
def history(request):
    jobs = ExportJob.objects.owned_by(request.user).for_serializing().order_by("-created_at")
    page = Paginator(jobs, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "exports/history.html", {"page_obj": page})


@login_required
@require_safe
def working_video_media(request, video_id):
    video = get_object_or_404(
        WorkingVideo.objects.select_related("project", "export_job"), pk=video_id, project__owner=request.user
    )
    return media_response(
        request,
        video.media,
        content_type="video/mp4",
        filename=video.download_filename,
        as_attachment="download" in request.GET,
    )

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from projects.media import media_response

from .models import WorkingVideo


@login_required
@require_GET
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

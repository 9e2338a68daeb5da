from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST, require_safe

from projects.media import media_response

from .models import ExportJob, NoticePreference, WorkingVideo

HISTORY_PAGE_SIZE = 25


@login_required
@require_GET
def history(request):
    jobs = ExportJob.objects.owned_by(request.user).for_serializing().order_by("-created_at")
    page = Paginator(jobs, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    email_when_away = NoticePreference.email_when_away_for(request.user.pk)
    return render(request, "exports/history.html", {"page_obj": page, "email_when_away": email_when_away})


@login_required
@require_safe
def history_row(request, job_id):
    """One row of the history table, as the page draws it: history.js swaps it in when the job changes."""
    job = get_object_or_404(ExportJob.objects.owned_by(request.user).for_serializing(), pk=job_id)
    return render(request, "exports/history_row.html", {"job": job})


@login_required
@require_POST
def notice_preference(request):
    """The history page's switch: e-mail me when an export ends while no page is open (a plain form, no script)."""
    email_when_away = request.POST.get("email_when_away") == "on"
    NoticePreference.objects.update_or_create(user=request.user, defaults={"email_when_away": email_when_away})
    said = "You will get an e-mail" if email_when_away else "No more e-mails"
    messages.success(request, f"{said} when an export ends while no page of the app is open.")
    return redirect("exports:history")


@login_required
@require_safe
def working_video_card(request, video_id):
    """A working video's card, as its project page draws it: export_forms.js adds it when an export ends."""
    video = get_object_or_404(
        WorkingVideo.objects.select_related("export_job"), pk=video_id, project__owner=request.user
    )
    return render(request, "exports/working_video_card.html", {"video": video})


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

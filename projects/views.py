from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_safe

from exports_project.http import api_view, isoformat
from modal_jobs.media import MediaProbeError

from . import services
from .forms import ClipUploadForm, ProjectForm
from .media import media_response
from .models import Clip, Project


def get_project_for_user(user, project_id) -> Project:
    """Return the user's project or raise Http404: other users' projects do not exist for them."""
    return get_object_or_404(Project.objects.owned_by(user), pk=project_id)


@login_required
@require_http_methods(["GET", "POST"])
def project_list(request):
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        project = services.create_project(owner=request.user, name=form.cleaned_data["name"])
        messages.success(request, f"Created “{project.name}”.")
        return redirect(project)
    projects = Project.objects.owned_by(request.user)
    status = 400 if form.errors else 200
    return render(request, "projects/project_list.html", {"projects": projects, "form": form}, status=status)


@login_required
@require_GET
def project_detail(request, project_id):
    project = get_project_for_user(request.user, project_id)
    return _render_detail(request, project, ClipUploadForm())


@login_required
@require_http_methods(["GET", "POST"])
def clip_upload(request, project_id):
    project = get_project_for_user(request.user, project_id)
    if request.method == "GET":  # the address bar after a failed upload: the project is what they want
        return redirect(project)
    form = ClipUploadForm(request.POST, request.FILES)
    # The page's script uploads with progress and asks for JSON; without script the form posts as HTML.
    wants_json = request.headers.get("Accept") == "application/json"
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            clip = services.add_clip(project=project, path=upload.temporary_file_path(), original_name=upload.name)
        except MediaProbeError as error:
            form.add_error("file", f"{upload.name}: {error}")
        else:
            messages.success(request, f"Added {clip} ({clip.duration:.1f} s, {clip.width}×{clip.height}).")
            if wants_json:
                return JsonResponse({"redirect": project.get_absolute_url()}, status=201)
            return redirect(project)
    if wants_json:
        return JsonResponse({"error": " ".join(form.errors.get("file", ["The upload was refused."]))}, status=400)
    return _render_detail(request, project, form, status=400)


@login_required
@require_safe
def clip_media(request, project_id, clip_id):
    clip = get_object_or_404(Clip.objects.owned_by(request.user), project_id=project_id, pk=clip_id)
    return media_response(
        request,
        clip.media,
        content_type=clip.content_type,
        filename=clip.original_name or f"clip-{clip.pk}.mp4",
        as_attachment="download" in request.GET,
    )


def _render_detail(request, project, upload_form, status=200):
    context = {
        "project": project,
        "clips": project.clips.all(),
        "working_videos": project.working_videos.select_related("export_job"),
        "upload_form": upload_form,
    }
    return render(request, "projects/project_detail.html", context, status=status)


# JSON API


@api_view("GET")
def api_project_list(request):
    projects = Project.objects.owned_by(request.user)
    return JsonResponse({"projects": [serialize_project_summary(project) for project in projects]})


@api_view("GET")
def api_project_detail(request, project_id):
    project = get_project_for_user(request.user, project_id)
    return JsonResponse({"project": serialize_project(project)})


def serialize_project_summary(project: Project) -> dict:
    return {
        "id": project.pk,
        "name": project.name,
        "url": project.get_absolute_url(),
        "created_at": isoformat(project.created_at),
        "updated_at": isoformat(project.updated_at),
    }


def serialize_project(project: Project) -> dict:
    clips = [
        {
            "id": clip.pk,
            "name": clip.original_name,
            "order": clip.order,
            "duration": clip.duration,
            "width": clip.width,
            "height": clip.height,
            "has_audio": clip.has_audio,
            "url": clip.get_media_url(),
        }
        for clip in project.clips.all()
    ]
    # Working videos come through the reverse relation: projects imports nothing from exports.
    working_videos = [
        {**video.as_json(), "export_job_id": str(video.export_job_id), "created_at": isoformat(video.created_at)}
        for video in project.working_videos.all()
    ]
    return {**serialize_project_summary(project), "clips": clips, "working_videos": working_videos}

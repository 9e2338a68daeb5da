"""The exports JSON API: thin views over exports.services, owner-scoped, JSON errors."""

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from exports_project.errors import json_error
from exports_project.http import InvalidBody, api_view, json_body
from modal_jobs.kinds import KINDS
from modal_jobs.schema import InvalidParams
from projects.models import Clip, Project
from projects.views import get_project_for_user

from . import events, services
from .executor import Budget
from .models import ExportJob, Trigger
from .reconcile import reconcile_job, reconcile_jobs
from .serializers import serialize_job


def get_job_for_user(user, job_id) -> ExportJob:
    """Return the user's job or raise Http404: other users' jobs do not exist for them."""
    return get_object_or_404(ExportJob.objects.owned_by(user).for_serializing(), pk=job_id)


def job_response(job: ExportJob, status: int = 200) -> JsonResponse:
    job = ExportJob.objects.for_serializing().get(pk=job.pk)
    return JsonResponse({"job": serialize_job(job)}, status=status)


@api_view("POST")
def start_export(request, project_id):
    project = get_project_for_user(request.user, project_id)
    try:
        body = json_body(request)
        kind, params = body.get("kind"), body.get("params", {})
        if not isinstance(kind, str):
            raise InvalidParams({"kind": f"kind is required: one of {', '.join(KINDS)}"})
        unknown = sorted(set(body) - {"kind", "params"})
        if unknown:
            raise InvalidParams({key: "unknown field" for key in unknown})
        job = services.start_export(owner=request.user, project=project, kind=kind, params=params)
    except InvalidBody as error:
        return json_error(str(error), status=400)
    except (InvalidParams, services.ExportRefused) as error:
        return refusal_response(error, invalid="The export parameters are not valid.")
    return job_response(job, status=201)


def refusal_response(error: Exception, *, invalid: str) -> JsonResponse:
    """The answer to a start (or retry) that cannot go ahead: 400 invalid, 409 conflicting, 429 over the cap."""
    if isinstance(error, InvalidParams):
        return json_error(invalid, status=400, fields=error.errors)
    if isinstance(error, services.AlreadyRunning | services.AlreadyRetried):
        job = ExportJob.objects.for_serializing().get(pk=error.job.pk)
        return JsonResponse({"error": str(error), "job": serialize_job(job)}, status=409)
    if isinstance(error, services.TooManyExports):
        return json_error(str(error), status=429)
    return json_error(str(error), status=409)


@csrf_exempt
@require_POST
def worker_event(request, job_id):
    """
    A signed event from the job's worker, when Django serves it (tests, WSGI): under daphne the same path goes
    to consumers.WorkerEventConsumer, which skips the middleware a machine's request has no use for.
    """
    status, answer = events.take(job_id, request.read(events.MAX_EVENT_BYTES + 1), request.headers)
    return JsonResponse(answer, status=status)


@api_view("GET")
def active_exports(request):
    reconcile_jobs(
        ExportJob.objects.started_by(request.user).to_reconcile(), trigger=Trigger.VIEW, budget=Budget.for_request()
    )
    return JsonResponse({"jobs": [serialize_job(job) for job in ExportJob.objects.tray_of(request.user)]})


@api_view("GET")
def export_detail(request, job_id):
    job = get_job_for_user(request.user, job_id)
    reconcile_job(job, trigger=Trigger.VIEW, budget=Budget.for_request())
    return job_response(job)


@api_view("POST")
def cancel_export(request, job_id):
    job = get_job_for_user(request.user, job_id)
    job = services.cancel_export(job, budget=Budget(settings.EXPORTS_REQUEST_BUDGET_SECONDS))
    return job_response(job)


@api_view("POST")
def retry_export(request, job_id):
    job = get_job_for_user(request.user, job_id)
    try:
        new_job = services.retry_export(job)
    except (InvalidParams, services.ExportRefused) as error:
        return refusal_response(error, invalid="This export can no longer run as it was.")
    return job_response(new_job, status=201)


@api_view("POST")
def dismiss_export(request, job_id):
    job = get_job_for_user(request.user, job_id)
    if job.is_active:
        return json_error("Only finished exports can be dismissed.", status=409)
    return job_response(services.dismiss_export(job))


@api_view("POST")
def delete_project(request, project_id):
    project = get_project_for_user(request.user, project_id)
    services.delete_project(project)
    return JsonResponse({"deleted": True, "purged": not Project.objects.filter(pk=project.pk).exists()})


@api_view("POST")
def delete_clip(request, project_id, clip_id):
    project = get_project_for_user(request.user, project_id)
    clip = get_object_or_404(Clip, project=project, pk=clip_id)
    try:
        services.delete_clip(clip)
    except services.ClipInUse as error:
        return json_error(str(error), status=409)
    return JsonResponse({"deleted": True})

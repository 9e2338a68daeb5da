"""The exports JSON API: validation, conflicts, caps, owner scoping, CSRF, and the user's actions."""

from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from exports.models import ErrorReason, ExportJob, ExportStatus
from projects import services as project_services
from projects.models import Clip, Project

from ..factories import ExportJobFactory, ProjectFactory
from ..helpers import post_json
from ..processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def start_url(project):
    return reverse("exports:api_start", args=[project.pk])


def multi_clip(clip, end=1.0):
    return {"kind": "multi_clip", "params": {"clips": [{"clip_id": clip.pk, "start": 0, "end": end}]}}


def test_invalid_params_are_400_with_field_errors_and_create_nothing(executor, owner_client, project, clip):
    response = post_json(owner_client, start_url(project), multi_clip(clip, end=95))
    assert response.status_code == 400
    assert response.json() == {
        "error": "The export parameters are not valid.",
        "fields": {"clips.0.end": "clip 1: end 95.0 s is past its 2.0 s duration"},
    }
    assert ExportJob.objects.count() == 0
    assert executor.calls["spawn"] == 0


def test_a_shape_error_and_an_end_past_the_clip_are_reported_together(executor, owner_client, project, clip):
    """Before: only the x was reported; fixed and sent again, the form was refused for the end."""
    highlights = [
        {"start": 0, "end": 1, "x": 1.5, "y": 0.5, "radius": 0.1},
        {"start": 0.5, "end": 9, "x": 0.5, "y": 0.5, "radius": 0.1},
    ]
    body = {"kind": "overlay", "params": {"clip_id": clip.pk, "highlights": highlights}}
    response = post_json(owner_client, start_url(project), body)
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "highlights.0.x": "highlight 1: x (horizontal position) must be between 0 and 1",
        "highlights.1.end": "highlight 2: end 9.0 s is past its 2.0 s duration",
    }
    assert ExportJob.objects.count() == 0
    assert executor.calls["spawn"] == 0


@pytest.mark.parametrize(
    "body, field",
    [
        ({"params": {}}, "kind"),
        ({"kind": "slideshow", "params": {}}, "kind"),
        ({"kind": "overlay", "params": "nope"}, "params"),
        ({"kind": "overlay", "params": {}, "extra": 1}, "extra"),
    ],
)
def test_malformed_requests_are_400(owner_client, project, body, field):
    response = post_json(owner_client, start_url(project), body)
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert ExportJob.objects.count() == 0


def test_a_body_that_is_not_json_is_400(owner_client, project):
    response = owner_client.post(start_url(project), data="kind=overlay", content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"error": "The body is not valid JSON."}


def test_a_clip_of_another_users_project_is_refused(executor, owner_client, project, outsider, video_path):
    foreign = project_services.add_clip(project=ProjectFactory(owner=outsider), path=str(video_path))
    response = post_json(owner_client, start_url(project), multi_clip(foreign))
    assert response.status_code == 400
    assert response.json()["fields"] == {"clips.0.clip_id": f"clip 1: no clip {foreign.pk} in this project"}


def test_a_second_start_of_the_same_kind_is_409_with_the_running_job(executor, owner_client, project, clip):
    first = post_json(owner_client, start_url(project), multi_clip(clip)).json()["job"]
    response = post_json(owner_client, start_url(project), multi_clip(clip))
    assert response.status_code == 409
    assert response.json()["job"]["id"] == first["id"]
    assert executor.calls["spawn"] == 1


def test_the_per_user_cap_is_429(executor, owner_client, project, clip, settings):
    settings.EXPORTS_MAX_ACTIVE_PER_USER = 1
    ExportJobFactory(project=ProjectFactory(owner=project.owner), status=ExportStatus.PROCESSING)
    response = post_json(owner_client, start_url(project), multi_clip(clip))
    assert response.status_code == 429
    assert "You already have 1 exports running" in response.json()["error"]
    assert executor.calls["spawn"] == 0


def test_another_users_jobs_are_404_everywhere(executor, outsider_client, project):
    job = ExportJobFactory(project=project, status=ExportStatus.ERROR, error_reason=ErrorReason.FAILED)
    for name in ("api_detail", "api_cancel", "api_retry", "api_dismiss"):
        url = reverse(f"exports:{name}", args=[job.pk])
        response = outsider_client.get(url) if name == "api_detail" else post_json(outsider_client, url)
        assert response.status_code == 404, name
        assert response.json() == {"error": "Not found."}
    assert post_json(outsider_client, start_url(project), {}).status_code == 404
    assert outsider_client.get(reverse("exports:api_active")).json() == {"jobs": []}


def test_posts_need_a_csrf_token(executor, owner, project, clip):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = post_json(client, start_url(project), multi_clip(clip))
    assert response.status_code == 403
    assert response.json()["error"].startswith("CSRF verification failed")
    assert ExportJob.objects.count() == 0


def test_retry_creates_a_new_job_with_the_same_params(executor, owner_client, project, clip):
    first = post_json(owner_client, start_url(project), multi_clip(clip)).json()["job"]
    ExportJob.objects.filter(pk=first["id"]).update(status=ExportStatus.ERROR, error_reason=ErrorReason.FAILED)
    failed = ExportJob.objects.get(pk=first["id"])
    response = post_json(owner_client, reverse("exports:api_retry", args=[failed.pk]))
    assert response.status_code == 201
    new = response.json()["job"]
    assert new["id"] != str(failed.pk)
    assert new["params"] == failed.params
    assert failed.events.get(kind="retried").data == {"new_job_id": new["id"]}
    running = post_json(owner_client, reverse("exports:api_retry", args=[new["id"]]))
    assert running.status_code == 409


def test_a_job_is_retried_once_and_a_second_retry_answers_409_with_the_first(executor, owner_client, project, clip):
    first = post_json(owner_client, start_url(project), multi_clip(clip)).json()["job"]
    ExportJob.objects.filter(pk=first["id"]).update(status=ExportStatus.ERROR, error_reason=ErrorReason.FAILED)
    retry_url = reverse("exports:api_retry", args=[first["id"]])
    retry = post_json(owner_client, retry_url).json()["job"]
    ExportJob.objects.filter(pk=retry["id"]).update(status=ExportStatus.COMPLETE)  # the retry has finished

    again = post_json(owner_client, retry_url)

    assert again.status_code == 409
    assert again.json()["job"]["id"] == retry["id"]
    assert ExportJob.objects.count() == 2
    original = owner_client.get(reverse("exports:api_detail", args=[first["id"]])).json()["job"]
    assert original["retry_id"] == retry["id"]
    assert retry["retry_id"] is None


def test_the_database_refuses_a_second_retry_that_got_past_the_check(executor, owner, project, clip):
    """Two retries racing past retry_export's look: the claim on the retried job decides; the loser gets the winner."""
    from exports import services

    failed = ExportJobFactory(project=project, status=ExportStatus.ERROR, error_reason=ErrorReason.FAILED)
    params = multi_clip(clip)["params"]
    winner = services.start_export(owner=owner, project=project, kind="multi_clip", params=params, retry_of=failed)
    ExportJob.objects.filter(pk=winner.pk).update(status=ExportStatus.CANCELLED)

    with pytest.raises(services.AlreadyRetried) as refused:
        services.start_export(owner=owner, project=project, kind="multi_clip", params=params, retry_of=failed)

    assert refused.value.job.pk == winner.pk
    assert ExportJob.objects.count() == 2


def test_dismiss_hides_a_finished_job_from_the_tray(executor, owner_client, project):
    done = ExportJobFactory(project=project, status=ExportStatus.CANCELLED)
    ExportJob.objects.filter(pk=done.pk).update(finished_at=done.created_at)
    assert [job["id"] for job in owner_client.get(reverse("exports:api_active")).json()["jobs"]] == [str(done.pk)]
    assert post_json(owner_client, reverse("exports:api_dismiss", args=[done.pk])).status_code == 200
    assert owner_client.get(reverse("exports:api_active")).json()["jobs"] == []


def test_a_clip_used_by_a_running_export_cannot_be_deleted(executor, owner_client, project, clip):
    post_json(owner_client, start_url(project), multi_clip(clip))
    response = post_json(owner_client, reverse("exports:api_delete_clip", args=[project.pk, clip.pk]))
    assert response.status_code == 409
    assert "is used by a running Multi-clip export; cancel it first" in response.json()["error"]
    assert Clip.objects.filter(pk=clip.pk).exists()


def test_an_unused_clip_is_deleted_with_its_file(owner_client, project, clip):
    path = Path(clip.media.path)
    response = post_json(owner_client, reverse("exports:api_delete_clip", args=[project.pk, clip.pk]))
    assert response.status_code == 200
    assert not Clip.objects.filter(pk=clip.pk).exists()
    assert not path.exists()


def test_deleting_a_project_hides_it_cancels_its_exports_and_purges_once_they_stopped(
    executor, owner_client, project, long_clip, eager_checks
):
    job = post_json(owner_client, start_url(project), multi_clip(long_clip, end=10)).json()["job"]
    response = post_json(owner_client, reverse("exports:api_delete_project", args=[project.pk]))
    assert response.json() == {"deleted": True, "purged": False}
    assert owner_client.get(reverse("projects:detail", args=[project.pk])).status_code == 404
    assert ExportJob.objects.get(pk=job["id"]).cancel_requested_at is not None
    assert owner_client.get(f"/api/exports/{job['id']}/").status_code == 404
    assert owner_client.get("/api/exports/active/").json()["jobs"] == []

    wait_for(
        lambda: (
            call_command("reconcile_exports", stdout=open("/dev/null", "w"))
            or not Project.objects.filter(pk=project.pk).exists()
        ),
        what="the project to be purged",
    )
    assert not ExportJob.objects.filter(pk=job["id"]).exists()
    assert not Clip.objects.filter(pk=long_clip.pk).exists()
    assert not Path(long_clip.media.path).exists()
    assert list((Path(long_clip.media.storage.location) / "exports" / job["id"]).glob("*")) == []


def test_a_failed_job_tells_its_owner_a_plain_sentence_and_keeps_the_technical_text_for_the_admin(
    owner_client, project
):
    technical = "The export raised ConnectionResetError: [Errno 104] reset by peer"
    job = ExportJobFactory(
        project=project, status=ExportStatus.ERROR, error_reason=ErrorReason.FAILED, error_message=technical
    )

    error = owner_client.get(f"/api/exports/{job.pk}/").json()["job"]["error"]
    history = owner_client.get(reverse("exports:history")).content.decode()

    assert error == {
        "reason": "failed",
        "message": "Something went wrong while rendering. Retry it; if it fails again, "
        f"contact support and quote job {job.pk}.",
    }
    assert f"contact support and quote job {job.pk}" in history
    assert technical not in history and "ConnectionResetError" not in str(error)

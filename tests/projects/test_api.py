"""The projects JSON API: owner-scoped, and JSON even when things go wrong."""

import pytest
from django.test import Client
from django.urls import reverse

from ..factories import ExportJobFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def test_it_lists_only_the_users_projects(owner_client, project, outsider):
    ProjectFactory(owner=outsider, name="Not yours")
    body = owner_client.get(reverse("projects:api_list")).json()
    assert [(item["id"], item["name"]) for item in body["projects"]] == [(project.pk, project.name)]


def test_project_detail_has_clips_and_working_videos(owner_client, project, clip):
    from exports.models import ExportStatus, WorkingVideo

    job = ExportJobFactory(project=project, status=ExportStatus.COMPLETE, progress=100)
    video = WorkingVideo.objects.create(
        project=project, export_job=job, media=clip.media.name, duration=2.0, width=320, height=240, size=1
    )
    body = owner_client.get(reverse("projects:api_detail", args=[project.pk])).json()["project"]
    assert body["id"] == project.pk
    assert body["clips"] == [
        {
            "id": clip.pk,
            "name": "kick-off.mp4",
            "order": 0,
            "duration": clip.duration,
            "width": 320,
            "height": 240,
            "has_audio": True,
            "url": clip.get_media_url(),
        }
    ]
    [working_video] = body["working_videos"]
    assert working_video["id"] == video.pk
    assert working_video["export_job_id"] == str(job.pk)
    assert working_video["url"] == video.get_media_url()
    assert (working_video["width"], working_video["height"]) == (320, 240)


def test_working_video_media_is_owner_only_and_downloads_with_a_sensible_name(
    owner_client, outsider_client, project, clip
):
    from exports.models import ExportStatus, WorkingVideo

    job = ExportJobFactory(project=project, status=ExportStatus.COMPLETE, progress=100)
    video = WorkingVideo.objects.create(
        project=project, export_job=job, media=clip.media.name, duration=2.0, width=320, height=240, size=1
    )
    assert outsider_client.get(video.get_media_url()).status_code == 404
    response = owner_client.get(video.get_download_url(), HTTP_RANGE="bytes=0-9")
    assert response.status_code == 206
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="Match of the day - Multi-clip - ')
    assert disposition.endswith('.mp4"')


def test_anonymous_api_requests_get_json_401(client, project):
    response = client.get(reverse("projects:api_detail", args=[project.pk]))
    assert response.status_code == 401
    assert response.json() == {"error": "Authentication required."}


def test_unknown_api_urls_and_foreign_ids_get_json_404(owner_client, outsider):
    foreign = ProjectFactory(owner=outsider)
    for url in ["/api/nothing-here/", reverse("projects:api_detail", args=[foreign.pk])]:
        response = owner_client.get(url)
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"error": "Not found."}


def test_wrong_methods_get_json_405(owner_client, project):
    response = owner_client.delete(reverse("projects:api_detail", args=[project.pk]))
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert "not allowed" in response.json()["error"]


def test_csrf_failures_under_api_are_json(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(reverse("projects:api_list"), data={}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"].startswith("CSRF verification failed")


def test_non_api_404_stays_html(owner_client):
    response = owner_client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")

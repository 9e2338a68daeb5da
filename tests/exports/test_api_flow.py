"""An export over the JSON API with the real local executor, from start to a playable working video."""

import json

import pytest
from django.urls import reverse

from exports.models import ExportJob, ExportStatus, WorkingVideo
from modal_jobs.media import probe

from ..processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def post_json(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def test_an_export_runs_to_a_working_video_through_the_api(executor, owner_client, project, clip, eager_checks):
    body = {"kind": "multi_clip", "params": {"clips": [{"clip_id": clip.pk, "start": 0, "end": 1.5}]}}
    response = post_json(owner_client, reverse("exports:api_start", args=[project.pk]), body)
    assert response.status_code == 201, response.content
    job = response.json()["job"]
    assert job["status"] == "processing"
    assert job["params"]["clips"][0] == {"clip_id": clip.pk, "start": 0.0, "end": 1.5}

    url = reverse("exports:api_detail", args=[job["id"]])
    finished = wait_for(
        lambda: (current := owner_client.get(url).json()["job"])["status"] != "processing" and current,
        what="the export to finish",
    )
    assert finished["status"] == "complete", finished
    assert finished["progress"] == 100
    video = WorkingVideo.objects.get(export_job_id=job["id"])
    assert finished["working_video"] == {"id": video.pk, "url": video.get_media_url()}
    assert probe(video.media.path).duration == pytest.approx(1.5, abs=0.1)
    active = owner_client.get(reverse("exports:api_active")).json()["jobs"]
    assert [item["id"] for item in active] == [job["id"]]  # finished, not dismissed: still in the tray
    events = list(ExportJob.objects.get(pk=job["id"]).events.values_list("kind", flat=True))
    assert events[:2] == ["created", "spawned"] and events[-1] == "completed"
    assert ExportJob.objects.get(pk=job["id"]).status == ExportStatus.COMPLETE

"""An export over the JSON API with the real local executor, from start to a playable working video."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from exports.models import ExportJob, ExportStatus, WorkingVideo
from modal_jobs.media import probe

from ..helpers import post_json
from ..processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


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
    assert finished["working_video"]["url"] == video.get_media_url()
    assert finished["working_video"]["download_url"] == video.get_download_url()
    assert (finished["working_video"]["width"], finished["working_video"]["duration"]) == (video.width, video.duration)
    assert probe(video.media.path).duration == pytest.approx(1.5, abs=0.1)
    active = owner_client.get(reverse("exports:api_active")).json()["jobs"]
    assert [item["id"] for item in active] == [job["id"]]  # finished, not dismissed: still in the tray
    events = list(ExportJob.objects.get(pk=job["id"]).events.values_list("kind", flat=True))
    assert events[:2] == ["created", "spawned"] and events[-1] == "completed"
    assert ExportJob.objects.get(pk=job["id"]).status == ExportStatus.COMPLETE


def finished_unwatched(owner_client, project, clip, executor, *, delete_input=False):
    """Start an export, let it end with nobody looking, wait, then look: (the job as the API shows it, the result)."""
    from exports.executor import get_executor
    from modal_jobs.executors import CallStatus

    if delete_input:
        clip.media.storage.delete(clip.media.name)
    body = {"kind": "multi_clip", "params": {"clips": [{"clip_id": clip.pk, "start": 0, "end": 1.0}]}}
    job = post_json(owner_client, reverse("exports:api_start", args=[project.pk]), body).json()["job"]
    call_id = ExportJob.objects.get(pk=job["id"]).call_id
    calls = get_executor().backend.inner
    wait_for(lambda: calls.poll(call_id).status is not CallStatus.RUNNING, what="the call to end")
    time.sleep(2.5)  # nobody looks for a while
    looked_at = datetime.now(UTC)
    shown = owner_client.get(reverse("exports:api_detail", args=[job["id"]])).json()["job"]
    result = calls.poll(call_id).result
    return shown, result, looked_at


@pytest.mark.parametrize("delete_input", [False, True], ids=["completed", "failed"])
def test_the_finish_time_is_when_the_worker_finished_not_when_someone_looked(
    executor, owner_client, project, clip, eager_checks, delete_input
):
    shown, result, looked_at = finished_unwatched(owner_client, project, clip, executor, delete_input=delete_input)

    assert shown["status"] == ("error" if delete_input else "complete"), shown
    worker_finished = result.finished_at
    assert datetime.fromisoformat(shown["finished_at"]) == worker_finished
    assert looked_at - worker_finished >= timedelta(seconds=2)
    event = ExportJob.objects.get(pk=shown["id"]).events.get(kind="failed" if delete_input else "completed")
    assert event.data["worker_finished_at"] == shown["finished_at"]  # the timeline shows both times
    assert datetime.fromisoformat(event.data["noticed_at"]) >= looked_at


def test_a_worker_clock_ahead_of_ours_cannot_put_the_finish_in_the_future(project):
    from exports.models import ExportJob as Job

    job = Job(project=project, owner=project.owner, created_at=datetime.now(UTC) - timedelta(minutes=5))
    now = datetime.now(UTC)
    assert job.finish_time(now + timedelta(hours=1), now=now) == now
    assert job.finish_time(job.created_at - timedelta(hours=1), now=now) == job.created_at
    assert job.finish_time(None, now=now) == now

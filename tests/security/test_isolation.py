"""No one where they don't belong: every URL is owner-scoped, worker text is escaped, keys never come from users."""

import json
import os
import re
import subprocess
import sys

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from exports.models import ErrorReason, ExportJob, ExportStatus, WorkingVideo
from exports_project.asgi import application
from projects.models import Clip

from ..factories import ExportJobFactory, ProjectFactory
from ..servers import ROOT
from .conftest import settings as hypothesis_settings

HOSTILE = "<script>alert('owned')</script><img src=x onerror=alert(1)>"


@pytest.fixture
def foreign_objects(db, outsider, video_path):
    """An outsider's project with a clip, a finished job with a working video, and an active job."""
    from projects import services as project_services

    project = ProjectFactory(owner=outsider)
    clip = project_services.add_clip(project=project, path=str(video_path))
    finished = ExportJobFactory(project=project, status=ExportStatus.COMPLETE, progress=100)
    video = WorkingVideo.objects.create(
        project=project, export_job=finished, media=clip.media.name, duration=2, width=320, height=240, size=1
    )
    active = ExportJobFactory(project=project, kind="overlay", status=ExportStatus.PROCESSING)
    return project, clip, finished, video, active


@pytest.mark.django_db
def test_every_url_of_another_users_objects_is_404(recording_executor, owner_client, foreign_objects):
    project, clip, finished, video, active = foreign_objects
    gets = [
        reverse("projects:detail", args=[project.pk]),
        reverse("projects:api_detail", args=[project.pk]),
        reverse("projects:clip_media", args=[project.pk, clip.pk]),
        reverse("exports:working_video_media", args=[video.pk]),
        reverse("exports:working_video_card", args=[video.pk]),
        reverse("exports:api_detail", args=[finished.pk]),
        reverse("exports:api_detail", args=[active.pk]),
        reverse("exports:history_row", args=[finished.pk]),
    ]
    posts = [
        reverse("projects:clip_upload", args=[project.pk]),
        reverse("exports:api_start", args=[project.pk]),
        reverse("exports:api_cancel", args=[active.pk]),
        reverse("exports:api_retry", args=[finished.pk]),
        reverse("exports:api_dismiss", args=[finished.pk]),
        reverse("exports:api_delete_project", args=[project.pk]),
        reverse("exports:api_delete_clip", args=[project.pk, clip.pk]),
    ]
    for url in gets:
        assert owner_client.get(url).status_code == 404, url
    for url in posts:
        assert owner_client.post(url, data="{}", content_type="application/json").status_code == 404, url
    assert owner_client.get(reverse("exports:api_active")).json() == {"jobs": []}
    assert owner_client.get(reverse("projects:api_list")).json() == {"projects": []}
    assert str(finished.pk) not in owner_client.get(reverse("exports:history")).content.decode()
    active.refresh_from_db()
    assert active.cancel_requested_at is None and Clip.objects.filter(pk=clip.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_another_users_jobs_never_reach_a_socket_snapshot(owner, foreign_objects):
    client = Client()
    client.force_login(owner)
    cookie = f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"

    async def snapshot():
        socket = WebsocketCommunicator(
            application,
            "/ws/exports/?cursor=2000-01-01T00:00:00Z",
            headers=[(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie.encode())],
        )
        await socket.connect()
        message = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return message

    assert async_to_sync(snapshot)()["jobs"] == []


@pytest.mark.django_db
def test_worker_text_and_user_names_are_escaped_everywhere(owner_client, owner, project):
    project.name = HOSTILE
    project.save()
    active = ExportJobFactory(project=project, status=ExportStatus.PROCESSING, stage=HOSTILE[:64], message=HOSTILE)
    failed = ExportJobFactory(
        project=project,
        kind="overlay",
        status=ExportStatus.ERROR,
        error_reason=ErrorReason.FAILED,
        error_message=HOSTILE,
        params={"clip_id": HOSTILE},
    )
    ExportJob.objects.filter(pk=failed.pk).update(finished_at=timezone.now())
    admin = get_user_model().objects.create_superuser("root-admin", password="x")
    staff = Client()
    staff.force_login(admin)
    pages = [
        owner_client.get(reverse("projects:list")),
        owner_client.get(project.get_absolute_url()),
        owner_client.get(reverse("exports:history")),
        staff.get(reverse("admin:exports_exportjob_changelist")),
        staff.get(reverse("admin:exports_exportjob_change", args=[active.pk])),
        staff.get(reverse("admin:exports_exportjob_change", args=[failed.pk])),
    ]
    for response in pages:
        html = response.content.decode()
        assert response.status_code == 200
        assert "<script>alert(" not in html, response.request["PATH_INFO"]
        assert "<img src=x" not in html, response.request["PATH_INFO"]
    tray_data = json.loads(
        re.search(r'id="export-tray-jobs" type="application/json">(.*?)</script>', pages[0].content.decode()).group(1)
    )
    assert {job["message"] for job in tray_data} >= {HOSTILE}  # the data is intact; only its rendering is escaped


@pytest.mark.django_db
def test_storage_keys_never_come_from_file_names(owner_client, project, video_path):
    for name in ("../../../etc/passwd.mp4", "..\\..\\evil.mov", "a" * 300 + ".mp4", "clip.exe"):
        upload = SimpleUploadedFile(name, video_path.read_bytes(), content_type="video/mp4")
        response = owner_client.post(reverse("projects:clip_upload", args=[project.pk]), {"file": upload})
        assert response.status_code == 302
    for clip in project.clips.all():
        assert re.fullmatch(rf"projects/{project.pk}/clips/[0-9a-f]{{32}}\.mp4", clip.media.name), clip.media.name
        assert clip.media.path.startswith(str(django_settings.MEDIA_ROOT))


@pytest.mark.django_db(transaction=True)
@hypothesis_settings(parent=hypothesis_settings.get_profile("fuzz"))
@given(
    frame=st.text(min_size=1, max_size=6000) | st.binary(min_size=1, max_size=6000)
)  # the test client sends no empty frames
def test_junk_socket_frames_get_an_error_and_the_socket_stays_up(owner, frame):
    client = Client()
    client.force_login(owner)
    cookie = f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"

    async def exchange():
        headers = [(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie.encode())]
        socket = WebsocketCommunicator(application, "/ws/exports/", headers=headers)
        await socket.connect()
        await socket.receive_json_from(timeout=5)
        if isinstance(frame, bytes):
            await socket.send_to(bytes_data=frame)
        else:
            await socket.send_to(text_data=frame)
        answer = await socket.receive_json_from(timeout=5)
        await socket.send_json_to({"type": "ping"})
        still_up = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return answer, still_up

    answer, still_up = async_to_sync(exchange)()
    assert answer["type"] in ("error", "pong")
    assert still_up == {"type": "pong"}


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    environment = {
        **{key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}},
        "DEBUG": "false",
        "SECRET_KEY": "a-long-random-production-secret-" + "x" * 40,
        "ALLOWED_HOSTS": "exports.example.com",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "DATA_DIR": str(tmp_path),
    }
    completed = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "System check identified no issues" in completed.stdout

"""Project pages, uploads and media: owner-scoped, honest about bad files."""

from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from projects.models import Clip

from ..factories import ProjectFactory

pytestmark = pytest.mark.django_db


def stored_media_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def test_it_redirects_anonymous_users_to_sign_in(client, project):
    response = client.get(project.get_absolute_url())
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_owner_sees_the_project_with_playable_clips(owner_client, project, clip):
    response = owner_client.get(project.get_absolute_url())
    assert response.status_code == 200
    html = response.content.decode()
    assert project.name in html
    assert f'<video controls preload="metadata" src="{clip.get_media_url()}"' in html


def test_the_project_list_shows_only_the_users_projects(owner_client, project, outsider):
    foreign = ProjectFactory(owner=outsider, name="Someone else's final")
    html = owner_client.get(reverse("projects:list")).content.decode()
    assert project.name in html
    assert foreign.name not in html


def test_creating_a_project_needs_a_name(owner_client, owner):
    response = owner_client.post(reverse("projects:list"), {"name": ""})
    assert response.status_code == 400
    assert owner.projects.count() == 0
    response = owner_client.post(reverse("projects:list"), {"name": "Cup final"})
    project = owner.projects.get()
    assert response["Location"] == project.get_absolute_url()


@pytest.mark.parametrize(
    "url_name",
    ["projects:detail", "projects:api_detail"],
)
def test_another_users_project_is_not_found(outsider_client, project, url_name):
    response = outsider_client.get(reverse(url_name, args=[project.pk]))
    assert response.status_code == 404


def test_another_users_clip_media_is_not_found(outsider_client, clip):
    assert outsider_client.get(clip.get_media_url()).status_code == 404


def test_a_clip_is_not_found_through_another_project_of_the_same_owner(owner_client, owner, clip):
    other_project = ProjectFactory(owner=owner)
    url = reverse("projects:clip_media", args=[other_project.pk, clip.pk])
    assert owner_client.get(url).status_code == 404


def test_uploading_to_another_users_project_is_not_found_and_stores_nothing(outsider_client, project, video_path):
    before = stored_media_files()
    upload = SimpleUploadedFile("mine.mp4", video_path.read_bytes(), content_type="video/mp4")
    response = outsider_client.post(reverse("projects:clip_upload", args=[project.pk]), {"file": upload})
    assert response.status_code == 404
    assert Clip.objects.count() == 0
    assert stored_media_files() == before


def test_upload_probes_a_real_video(owner_client, project, video_path, silent_video_path):
    for path in (video_path, silent_video_path):
        upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="video/mp4")
        response = owner_client.post(reverse("projects:clip_upload", args=[project.pk]), {"file": upload})
        assert response.status_code == 302
    with_audio, silent = project.clips.all()
    assert (with_audio.width, with_audio.height, with_audio.has_audio) == (320, 240, True)
    assert with_audio.duration == pytest.approx(2.0, abs=0.1)
    assert (silent.width, silent.height, silent.has_audio) == (256, 144, False)
    assert (with_audio.order, silent.order) == (0, 1)
    assert with_audio.media.read() == video_path.read_bytes()


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("notes.mp4", b"these are my match notes, not a video\n" * 50, "not a video we can read"),
        ("song.wav", None, "not a video we can read"),  # a container no editor takes for video
        ("header-only.mp4", "first 1500 bytes", "frames cannot be decoded"),
        ("cut-short.mp4", "first 60%", "truncated or damaged"),
    ],
)
def test_upload_rejects_what_is_not_a_readable_video_and_stores_nothing(
    owner_client, project, video_path, media_dir, name, content, message
):
    if content is None:
        from modal_jobs.media import run_ffmpeg

        wav = media_dir / "tone.wav"
        run_ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=1", str(wav)])
        content = wav.read_bytes()
    elif content == "first 1500 bytes":
        content = video_path.read_bytes()[:1500]
    elif content == "first 60%":
        data = video_path.read_bytes()
        content = data[: len(data) * 6 // 10]
    before = stored_media_files()
    upload = SimpleUploadedFile(name, content, content_type="video/mp4")
    response = owner_client.post(reverse("projects:clip_upload", args=[project.pk]), {"file": upload})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert name in response.content.decode()
    assert project.clips.count() == 0
    assert stored_media_files() == before


def test_upload_rejects_an_empty_file(owner_client, project):
    upload = SimpleUploadedFile("empty.mp4", b"", content_type="video/mp4")
    response = owner_client.post(reverse("projects:clip_upload", args=[project.pk]), {"file": upload})
    assert response.status_code == 400
    assert "The submitted file is empty." in response.content.decode()
    assert project.clips.count() == 0


def test_upload_rejects_a_file_over_the_size_limit(owner_client, project, video_path, settings):
    settings.CLIP_UPLOAD_MAX_BYTES = 1000
    before = stored_media_files()
    upload = SimpleUploadedFile("big.mp4", video_path.read_bytes(), content_type="video/mp4")
    response = owner_client.post(reverse("projects:clip_upload", args=[project.pk]), {"file": upload})
    assert response.status_code == 400
    assert "the limit is 1000" in response.content.decode()
    assert project.clips.count() == 0
    assert stored_media_files() == before


def test_a_range_request_returns_206_with_exactly_those_bytes(owner_client, clip, video_path):
    data = video_path.read_bytes()
    response = owner_client.get(clip.get_media_url(), HTTP_RANGE="bytes=100-1099")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 100-1099/{len(data)}"
    assert response["Content-Length"] == "1000"
    assert b"".join(response.streaming_content) == data[100:1100]


def test_an_open_ended_and_a_suffix_range_return_the_right_tail(owner_client, clip, video_path):
    data = video_path.read_bytes()
    response = owner_client.get(clip.get_media_url(), HTTP_RANGE=f"bytes={len(data) - 10}-")
    assert response.status_code == 206
    assert b"".join(response.streaming_content) == data[-10:]
    response = owner_client.get(clip.get_media_url(), HTTP_RANGE="bytes=-20")
    assert b"".join(response.streaming_content) == data[-20:]


def test_a_range_past_the_end_is_416(owner_client, clip, video_path):
    size = video_path.stat().st_size
    response = owner_client.get(clip.get_media_url(), HTTP_RANGE=f"bytes={size + 10}-{size + 20}")
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{size}"


@pytest.mark.parametrize("suffix", [10**20, 10**6])
def test_a_suffix_range_longer_than_the_file_sends_the_whole_file(owner_client, clip, video_path, suffix):
    """RFC 9110: the entire representation, not 416 (which it answered before)."""
    data = video_path.read_bytes()

    response = owner_client.get(clip.get_media_url(), HTTP_RANGE=f"bytes=-{suffix}")

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 0-{len(data) - 1}/{len(data)}"
    assert b"".join(response.streaming_content) == data


def test_head_answers_the_headers_of_get_without_the_body(owner_client, clip, video_path):
    """Before: 405."""
    response = owner_client.head(clip.get_media_url(), HTTP_RANGE="bytes=0-99")

    assert (response.status_code, response["Content-Length"], response["Accept-Ranges"]) == (206, "100", "bytes")


def test_without_a_range_the_whole_file_is_sent_and_ranges_are_advertised(owner_client, clip, video_path):
    response = owner_client.get(clip.get_media_url())
    assert response.status_code == 200
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "video/mp4"
    assert b"".join(response.streaming_content) == video_path.read_bytes()


def test_download_names_the_file_after_the_clip(owner_client, clip):
    response = owner_client.get(clip.get_media_url() + "?download=1")
    assert response["Content-Disposition"] == 'attachment; filename="kick-off.mp4"'


def test_opening_the_upload_address_leads_back_to_the_project(owner_client, project):
    """After a failed upload the address bar holds the upload URL; reloading it must not answer a bare 405."""
    response = owner_client.get(reverse("projects:clip_upload", args=[project.pk]))
    assert response.status_code == 302
    assert response["Location"] == project.get_absolute_url()


def test_the_upload_form_states_the_size_limit_before_a_file_is_chosen(owner_client, project, settings):
    settings.CLIP_UPLOAD_MAX_BYTES = 3 * 1024**3
    html = owner_client.get(project.get_absolute_url()).content.decode()
    assert "Up to 3.0\xa0GB" in html


def test_the_pages_upload_with_progress_gets_json_a_place_to_go_or_a_reason(owner_client, project, video_path):
    url = reverse("projects:clip_upload", args=[project.pk])
    good = SimpleUploadedFile("kick-off.mp4", video_path.read_bytes(), content_type="video/mp4")
    response = owner_client.post(url, {"file": good}, HTTP_ACCEPT="application/json")
    assert response.status_code == 201
    assert response.json() == {"redirect": project.get_absolute_url()}
    assert "Added kick-off.mp4" in owner_client.get(project.get_absolute_url()).content.decode()  # the message waits

    bad = SimpleUploadedFile("notes.mp4", b"not a video at all" * 100, content_type="video/mp4")
    refused = owner_client.post(url, {"file": bad}, HTTP_ACCEPT="application/json")
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("notes.mp4:")
    assert project.clips.count() == 1

"""
Hostile uploads are refused cheaply: by container before anything is opened, by picture size from the
header before anything is decoded, and whatever slips past costs a child process its memory budget,
never the web process.
"""

import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from modal_jobs.media import UNREADABLE, run_ffmpeg

from .test_views import stored_media_files

pytestmark = pytest.mark.django_db

TOO_LARGE = "This video is larger than we take"


@pytest.fixture(scope="session")
def decoder_bomb(media_dir) -> Path:
    """Two frames of MJPEG at 16000x16000 in 3 MB: over a gigabyte to probe in process before."""
    path = media_dir / "bomb.avi"
    run_ffmpeg(["-f", "lavfi", "-i", "color=c=gray:s=16000x16000:d=0.4:r=5", "-c:v", "mjpeg", "-q:v", "31", str(path)])
    return path


@pytest.fixture(scope="session")
def eight_k_video(media_dir) -> Path:
    path = media_dir / "8k.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "color=s=8192x4320:d=1:r=2", "-c:v", "libx264", "-preset", "ultrafast", str(path)])
    return path


def upload(client, project, name: str, content: bytes):
    file = SimpleUploadedFile(name, content, content_type="video/mp4")
    return client.post(reverse("projects:clip_upload", args=[project.pk]), {"file": file})


def error_shown(response) -> str:
    return re.search(r'<ul class="errorlist"[^>]*><li>(.*?)</li>', response.content.decode(), re.S).group(1).strip()


def peak_memory_reset() -> int:
    """Reset this process's peak resident set (Linux's clear_refs) and return the resident set now, in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return memory_field("VmRSS")


def memory_field(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(name)


def test_a_decoder_bomb_is_refused_from_its_header_and_the_web_process_does_not_grow(
    owner_client, project, decoder_bomb
):
    """Before: the web process grew from 344 MB to 1.29 GB before answering 400."""
    before = stored_media_files()
    idle = peak_memory_reset()

    response = upload(owner_client, project, "bomb.avi", decoder_bomb.read_bytes())

    assert response.status_code == 400
    assert TOO_LARGE in response.content.decode()
    assert memory_field("VmHWM") - idle < 100 * 1024**2
    assert stored_media_files() == before and project.clips.count() == 0


def test_an_8k_video_is_refused(owner_client, project, eight_k_video):
    """Before: a 106 KB H.264 at 8192x4320 was accepted."""
    response = upload(owner_client, project, "8k.mp4", eight_k_video.read_bytes())

    assert (response.status_code, TOO_LARGE in response.content.decode()) == (400, True)


def test_past_the_size_limit_the_memory_budget_still_refuses_a_bomb(owner_client, project, decoder_bomb, settings):
    settings.CLIP_MAX_SIDE, settings.CLIP_MAX_FRAME_PIXELS, settings.CLIP_MAX_PIXEL_RATE = 20000, 10**9, 10**12
    idle = peak_memory_reset()

    response = upload(owner_client, project, "bomb.avi", decoder_bomb.read_bytes())

    assert response.status_code == 400
    assert "This video needs more memory to decode than we allow." in response.content.decode()
    assert memory_field("VmHWM") - idle < 100 * 1024**2


@pytest.mark.parametrize(("side", "accepted"), [(320, True), (319, False)])
def test_the_size_limit_is_the_setting(owner_client, project, video_path, settings, side, accepted):
    """video_path is 320x240."""
    settings.CLIP_MAX_SIDE = side

    response = upload(owner_client, project, "sample.mp4", video_path.read_bytes())

    assert (response.status_code < 400, project.clips.count()) == (accepted, int(accepted))


def test_a_playlist_is_refused_the_same_way_whether_its_segment_exists(owner_client, project, video_path):
    """Before: a local path in an .m3u8 was read, and two different errors told which server files exist."""

    def playlist(segment: str) -> bytes:
        return f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2,\n{segment}\n#EXT-X-ENDLIST\n".encode()

    existing = upload(owner_client, project, "list.m3u8", playlist(str(video_path)))
    missing = upload(owner_client, project, "list.m3u8", playlist("/no/such/file.mp4"))

    assert existing.status_code == missing.status_code == 400
    assert error_shown(existing) == error_shown(missing) == f"list.m3u8: {UNREADABLE}"
    assert project.clips.count() == 0

"""On S3/R2 storage, media views redirect the owner to a fresh short-lived presigned URL.

The S3 API is moto's server on loopback, reached through boto3 exactly as R2 would be.
"""

import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest

from projects import services

pytestmark = pytest.mark.django_db


def test_the_owner_is_redirected_to_a_presigned_url_that_serves_the_clip(s3_storage, owner_client, project, video_path):
    clip = services.add_clip(project=project, path=str(video_path), original_name="goal.mp4")
    assert clip.media.storage.__class__.__name__ == "S3Storage"

    response = owner_client.get(clip.get_media_url() + "?download=1")
    assert response.status_code == 302
    location = response["Location"]
    query = parse_qs(urlsplit(location).query)
    assert query["X-Amz-Expires"] == ["300"]
    assert query["response-content-disposition"] == ['attachment; filename="goal.mp4"']
    with urllib.request.urlopen(location, timeout=10) as presigned:
        assert presigned.read() == video_path.read_bytes()


def test_strangers_get_no_presigned_url(s3_storage, outsider_client, project, video_path):
    clip = services.add_clip(project=project, path=str(video_path), original_name="goal.mp4")
    assert outsider_client.get(clip.get_media_url()).status_code == 404

"""On S3/R2 storage, media views redirect the owner to a fresh short-lived presigned URL.

The S3 API is moto's server on loopback, reached through boto3 exactly as R2 would be.
"""

import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest

from projects import services

from ..conftest import make_bucket

pytestmark = pytest.mark.django_db


@pytest.fixture
def s3_storage(settings, s3_endpoint):
    bucket = make_bucket(s3_endpoint)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": s3_endpoint,
                "access_key": "test",
                "secret_key": "test",
                "region_name": "us-east-1",
                "signature_version": "s3v4",
                "addressing_style": "path",
                "default_acl": None,
                "file_overwrite": False,
                "querystring_expire": 300,
            },
        },
    }
    return bucket


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

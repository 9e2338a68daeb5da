"""On S3/R2 storage, media views redirect the owner to a fresh short-lived presigned URL.

The S3 API is moto's server on loopback, reached through boto3 exactly as R2 would be.
"""

import urllib.request
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from moto.server import ThreadedMotoServer

from projects import services

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_storage(settings, s3_endpoint):
    bucket = "exports-test"
    credentials = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
    boto3.client("s3", endpoint_url=s3_endpoint, **credentials).create_bucket(Bucket=bucket)
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


def test_the_owner_is_redirected_to_a_presigned_url_that_serves_the_clip(
    s3_storage, owner_client, project, video_path
):
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

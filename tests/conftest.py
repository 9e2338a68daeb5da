import os
import shutil
import uuid

import boto3
import pytest
from django.test import Client
from moto.server import ThreadedMotoServer

from exports.executor import backend_from_settings, use_backend
from modal_jobs.media import generate_test_clip
from projects import services as project_services
from testing_support.faults import FaultInjectingBackend

from .factories import PASSWORD, ProjectFactory, UserFactory
from .processes import kill_all_workers


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2's deliberate slowness costs a second per test user; tests don't need it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("media-samples")


@pytest.fixture(scope="session")
def video_path(media_dir):
    """A real 2-second 320x240 H.264/AAC clip rendered by ffmpeg."""
    path = media_dir / "sample.mp4"
    generate_test_clip(path, pattern="testsrc2", tone_hz=440, seconds=2, width=320, height=240, frame_rate=25)
    return path


@pytest.fixture(scope="session")
def demo_video_paths(media_dir):
    """The demo's three full clips (20 s, 1280x720, 30 fps, each with its tone), rendered as seed_demo does."""
    from projects.management.commands.seed_demo import DEMO_CLIPS

    paths = []
    for _name, pattern, tone_hz in DEMO_CLIPS:
        path = media_dir / f"demo-{pattern}.mp4"
        generate_test_clip(path, pattern=pattern, tone_hz=tone_hz)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def silent_video_path(media_dir):
    path = media_dir / "silent.mp4"
    generate_test_clip(path, pattern="smptebars", tone_hz=None, seconds=1.5, width=256, height=144, frame_rate=30)
    return path


@pytest.fixture
def owner(db):
    return UserFactory(username="owner")


@pytest.fixture
def outsider(db):
    return UserFactory(username="outsider")


@pytest.fixture
def project(owner):
    return ProjectFactory(owner=owner, name="Match of the day")


@pytest.fixture
def clip(project, video_path):
    return project_services.add_clip(project=project, path=str(video_path), original_name="kick-off.mp4")


def logged_in_client(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def owner_client(owner):
    return logged_in_client(owner)


@pytest.fixture
def outsider_client(outsider):
    return logged_in_client(outsider)


S3_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API (moto's server) on loopback, spoken to through boto3 as R2 would be."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def make_bucket(endpoint: str) -> str:
    bucket = f"exports-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, **S3_CREDENTIALS).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def s3_storage(settings, s3_endpoint):
    """Django's default storage on a fresh bucket of the loopback S3 API, as production's R2."""
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


@pytest.fixture
def throwaway_postgres():
    """A PostgreSQL cluster of the test's own, to stop or lock as it likes; the shared server is never touched."""
    from .servers import BINARIES, ThrowawayPostgres

    if not BINARIES or shutil.which("runuser") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PostgreSQL's binaries are missing")
        pytest.skip("PostgreSQL's binaries are not installed")
    database = ThrowawayPostgres()
    database.create()
    yield database
    database.destroy()


@pytest.fixture(autouse=True)
def no_worker_events(settings):
    """Workers started in-process have no server to post events to: they are learned about by looking, as
    with events off. Tests of events point EXPORTS_EVENTS_URL at a live server; the README's `make run`
    (tests/servers.py) has them on."""
    settings.EXPORTS_EVENTS_URL = ""


@pytest.fixture(autouse=True)
def fresh_executor():
    """Each test gets an executor (and circuit breaker) built from its own settings."""
    use_backend(None)
    yield
    use_backend(None)


@pytest.fixture
def eager_checks(settings):
    """Let every look read progress and ask the executor (no claim intervals)."""
    settings.EXPORTS_PROGRESS_INTERVAL_SECONDS = 0
    settings.EXPORTS_EXECUTOR_INTERVAL_SECONDS = 0


@pytest.fixture
def executor(settings, tmp_path):
    """The real LocalBackend (its own folder per test) behind the fault-injecting wrapper, as the app's executor."""
    settings.LOCAL_EXECUTOR_DIR = tmp_path / "executor"
    settings.EXPORTS_BREAKER_COOLDOWN_SECONDS = 0.5
    wrapper = FaultInjectingBackend(backend_from_settings())
    use_backend(wrapper)
    yield wrapper
    wrapper.release()
    kill_all_workers(settings.LOCAL_EXECUTOR_DIR)


@pytest.fixture(scope="session")
def long_video_path(media_dir):
    path = media_dir / "long.mp4"
    generate_test_clip(path, pattern="testsrc2", tone_hz=440, seconds=10, width=1280, height=720)
    return path


@pytest.fixture
def long_clip(project, long_video_path, monkeypatch):
    """A clip whose export takes half a minute here (x264's slowest preset), long enough to act mid-way."""
    monkeypatch.setenv("EXPORTS_X264_PRESET", "veryslow")
    return project_services.add_clip(project=project, path=str(long_video_path), original_name="long.mp4")

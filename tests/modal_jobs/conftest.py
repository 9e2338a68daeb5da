import json
import shutil
import uuid
from pathlib import Path

import pytest

from modal_jobs.media import generate_test_clip, probe, run_ffmpeg
from modal_jobs.records import job_key
from modal_jobs.schema import PAYLOAD_SCHEMA_VERSION
from modal_jobs.store import FileSystemStore

from ..conftest import make_bucket


@pytest.fixture(scope="session")
def sample_clips(tmp_path_factory):
    """Real clips rendered once per session: with sound, silent, rotated, variable frame rate."""
    folder = tmp_path_factory.mktemp("clips")
    clips = {
        "sound": folder / "sound.mp4",
        "silent": folder / "silent.mp4",
        "rotated": folder / "rotated.mp4",
        "variable_rate": folder / "variable-rate.mp4",
    }
    generate_test_clip(clips["sound"], pattern="testsrc2", tone_hz=440, seconds=3, width=480, height=270)
    generate_test_clip(clips["silent"], pattern="smptebars", tone_hz=None, seconds=2, width=320, height=240)
    run_ffmpeg(["-display_rotation", "90", "-i", str(clips["sound"]), "-c", "copy", str(clips["rotated"])])
    run_ffmpeg(
        [
            "-i", str(clips["sound"]),
            "-vf", r"select='not(eq(mod(n\,5)\,0))'",
            "-fps_mode", "passthrough",
            "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac",
            str(clips["variable_rate"]),
        ]
    )  # fmt: skip
    return clips


@pytest.fixture
def s3_environment(s3_endpoint):
    """The AWS_* variables a Modal secret (or the web settings) would carry."""
    return {
        "AWS_STORAGE_BUCKET_NAME": make_bucket(s3_endpoint),
        "AWS_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_S3_REGION_NAME": "us-east-1",
    }


@pytest.fixture
def store(tmp_path):
    return FileSystemStore(tmp_path / "store")


def add_input(store: FileSystemStore, path: Path) -> dict:
    """Put a clip in the store the way the web app does, and describe it as a worker input."""
    key = f"projects/1/clips/{uuid.uuid4().hex}.mp4"
    target = store.path(key)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return input_entry(key, path)


def input_entry(key: str, path: Path) -> dict:
    """A clip at `key` in a store, described as a worker input from its local copy at `path`."""
    info = probe(path)
    return {
        "key": key,
        "duration": info.duration,
        "width": info.display_width,
        "height": info.display_height,
        "has_audio": info.has_audio,
    }


def make_payload(kind: str, params: dict, inputs: dict) -> dict:
    return {
        "schema_version": PAYLOAD_SCHEMA_VERSION,
        "job_id": str(uuid.uuid4()),
        "kind": kind,
        "params": params,
        "inputs": {str(clip_id): entry for clip_id, entry in inputs.items()},
    }


@pytest.fixture(scope="session")
def detailed_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("detailed") / "detailed.mp4"
    generate_test_clip(path, pattern="testsrc2", tone_hz=440, seconds=8, width=960, height=540)
    return path


def detailed_payload(store, detailed_clip, monkeypatch) -> dict:
    """Four chunks of 2 s at 960x540 with x264's slowest preset: seconds each, long enough to act mid-way."""
    monkeypatch.setenv("EXPORTS_X264_PRESET", "veryslow")
    params = {"clips": [{"clip_id": 1, "start": 0, "end": 8}]}
    return make_payload("multi_clip", params, {1: add_input(store, detailed_clip)}) | {"chunk_seconds": 2}


def read_log(store, job_id: str) -> list[dict]:
    """Every record of the job's progress log, in the order the worker wrote them."""
    return [json.loads(line) for line in store.read_bytes(job_key(job_id, "progress.log")).splitlines()]


@pytest.fixture
def modal_server(monkeypatch, tmp_path):
    """A local stand-in of Modal's control plane, with this process's real `modal` client pointed at it."""
    from .modal_server import running_modal_server

    with running_modal_server(monkeypatch, tmp_path / "modal-config") as server:
        yield server

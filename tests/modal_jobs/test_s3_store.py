"""The S3 object store (R2 in production) against a real S3 API on loopback, through boto3."""

import json

import pytest

from modal_jobs.progress import ProgressReporter
from modal_jobs.records import job_key
from modal_jobs.store import S3Store, store_from_config
from modal_jobs.worker import run_export

from .conftest import input_entry, make_payload


@pytest.fixture
def s3_store(s3_environment):
    return S3Store.from_environment(s3_environment)


def test_objects_round_trip(s3_store):
    assert s3_store.read_bytes("exports/a/progress.json") is None
    assert s3_store.size("exports/a/progress.json") is None
    s3_store.write_bytes("exports/a/progress.json", b'{"percent": 5}')
    assert s3_store.read_bytes("exports/a/progress.json") == b'{"percent": 5}'
    assert s3_store.size("exports/a/progress.json") == 14
    s3_store.append_bytes("exports/a/progress.log", b"one\n")
    s3_store.append_bytes("exports/a/progress.log", b"two\n")
    assert s3_store.read_bytes("exports/a/progress.log") == b"one\ntwo\n"
    s3_store.delete("exports/a/progress.json")
    assert s3_store.read_bytes("exports/a/progress.json") is None


def test_transfers_report_bytes(s3_store, tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 3_000_000)
    uploads, downloads = [], []
    assert (
        s3_store.upload_file("exports/b/output.mp4", source, on_progress=lambda *done: uploads.append(done))
        == 3_000_000
    )
    target = tmp_path / "target.bin"
    s3_store.download_file("exports/b/output.mp4", target, on_progress=lambda *done: downloads.append(done))
    assert target.read_bytes() == source.read_bytes()
    for progress in (uploads, downloads):
        assert progress[-1] == (3_000_000, 3_000_000)
        assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    with pytest.raises(FileNotFoundError):
        s3_store.download_file("exports/b/missing.mp4", target)


def test_the_progress_log_is_flushed_with_the_heartbeat_and_at_the_end(s3_store):
    reporter = ProgressReporter(store=s3_store, job_id="job", call_id="fc-1", throttle_seconds=0, heartbeat_seconds=60)
    reporter.start()
    reporter.update(percent=10, stage="rendering")
    assert s3_store.read_bytes(job_key("job", "progress.log")) is None  # S3 objects are rewritten whole: batched
    assert json.loads(s3_store.read_bytes(job_key("job", "progress.json")))["percent"] == 10
    reporter.finish()
    percents = [
        json.loads(line)["percent"] for line in s3_store.read_bytes(job_key("job", "progress.log")).splitlines()
    ]
    assert percents == [0, 10, 100]


def test_a_worker_renders_from_and_to_s3(s3_environment, sample_clips, monkeypatch):
    for name, value in s3_environment.items():
        monkeypatch.setenv(name, value)
    store = store_from_config({"type": "s3"})
    store.upload_file("projects/1/clips/silent.mp4", sample_clips["silent"])
    inputs = {1: input_entry("projects/1/clips/silent.mp4", sample_clips["silent"])}
    payload = make_payload(
        "overlay", {"clip_id": 1, "highlights": [{"start": 0, "end": 1, "x": 0.5, "y": 0.5, "radius": 0.2}]}, inputs
    )

    result = run_export(payload, store=store, call_id="fc-s3")

    assert result["status"] == "success", result
    assert store.size(result["output_key"]) == result["size"]
    assert json.loads(store.read_bytes(job_key(payload["job_id"], "result.json")))["status"] == "success"
    log = store.read_bytes(job_key(payload["job_id"], "progress.log")).splitlines()
    assert json.loads(log[-1])["percent"] == 100

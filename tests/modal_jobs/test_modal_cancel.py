"""
A cancelled Modal input stops its render at once: replayed with a real payload in a
process that raises InputCancellation from its SIGUSR1 handler, as a Modal container does.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from modal_jobs.records import job_key
from modal_jobs.store import S3Store

from ..processes import children, command_names, is_alive, wait_for
from .conftest import add_input, make_payload

ROOT = Path(__file__).resolve().parents[2]
STOP_LIMIT_SECONDS = 3.0


def test_a_cancelled_input_stops_ffmpeg_and_returns_within_seconds(s3_environment, store, long_video_path, tmp_path):
    """Before, the pipeline waited for ffmpeg to finish the render: about 20 s here, the GPU billed all along."""
    staged = add_input(store, long_video_path)
    bucket = S3Store.from_environment(s3_environment)
    bucket.upload_file(staged["key"], store.path(staged["key"]))
    payload = make_payload("multi_clip", {"clips": [{"clip_id": 1, "start": 0, "end": 10}]}, {1: staged})
    payload_path = tmp_path / "payload.json"
    payload_path.write_text(json.dumps(payload))
    environment = {**os.environ, **s3_environment, "EXPORTS_X264_PRESET": "veryslow", "TMPDIR": str(tmp_path)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.modal_jobs.replay_modal_input", str(payload_path)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ffmpeg = wait_for(
            lambda: [pid for pid in children(worker.pid) if "ffmpeg" in "".join(command_names([pid]))],
            timeout=60,
            what="the worker's ffmpeg",
        )
        wait_for(lambda: rendering_seconds(bucket, payload["job_id"]) > 0, timeout=60, what="rendering progress")

        worker.send_signal(signal.SIGUSR1)
        signalled = time.monotonic()
        worker.wait(timeout=STOP_LIMIT_SECONDS)
        stopped_after = time.monotonic() - signalled

        assert worker.stdout.read().strip() == "cancelled"
        assert stopped_after < STOP_LIMIT_SECONDS
        assert not any(is_alive(pid) for pid in ffmpeg)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def rendering_seconds(bucket: S3Store, job_id: str) -> float:
    record = json.loads(bucket.read_bytes(job_key(job_id, "progress.json")) or b"{}")
    return (record.get("processed_seconds") or 0) if record.get("stage") == "rendering" else 0

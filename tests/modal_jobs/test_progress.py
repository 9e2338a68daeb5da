"""The worker reports real progress: from ffmpeg's media time and transfer bytes, throttled, with a heartbeat."""

import json
import time
from datetime import datetime

import pytest

from modal_jobs.progress import ProgressReporter
from modal_jobs.records import job_key
from modal_jobs.worker import run_export

from .conftest import add_input, make_payload, read_log


def test_rendering_the_three_demo_clips_reports_increasing_real_percentages_up_to_100(store, demo_video_paths):
    inputs = {number: add_input(store, path) for number, path in enumerate(demo_video_paths, start=1)}
    params = {"clips": [{"clip_id": number, "start": 0, "end": 20} for number in inputs]}
    payload = make_payload("multi_clip", params, inputs)

    result = run_export(payload, store=store, call_id="local-demo")

    assert result["status"] == "success", result
    records = read_log(store, payload["job_id"])
    percents = [record["percent"] for record in records]
    assert percents == sorted(percents)
    assert percents[-1] == 100 and percents.count(100) == 1
    distinct = sorted(set(percents))
    assert len(distinct) >= 5, percents
    rendering = [record for record in records if record["stage"] == "rendering"]
    assert len({record["processed_seconds"] for record in rendering}) >= 3
    for record in records:
        assert set(record) >= {"percent", "stage", "message", "processed_seconds", "total_seconds", "worker_time"}
        assert record["call_id"] == "local-demo"
        assert record["attempt"] == 1
    for record in rendering:
        assert record["total_seconds"] == pytest.approx(60, abs=0.1)
        assert 0 <= record["processed_seconds"] <= record["total_seconds"]
    assert json.loads(store.read_bytes(job_key(payload["job_id"], "progress.json"))) == records[-1]


def test_the_first_record_is_written_before_any_work(store):
    reporter = ProgressReporter(store=store, job_id="job-1", call_id="fc-123")
    reporter.start(total_seconds=12)
    first = json.loads(store.read_bytes(job_key("job-1", "progress.json")))
    reporter.stop()
    assert (first["percent"], first["stage"], first["call_id"], first["total_seconds"]) == (0, "starting", "fc-123", 12)


def test_updates_are_throttled_but_stage_changes_are_written_at_once(store):
    reporter = ProgressReporter(store=store, job_id="job-2", call_id="c", throttle_seconds=60, heartbeat_seconds=60)
    reporter.start()
    for percent in range(1, 30):
        reporter.update(percent=percent, stage="rendering")
    reporter.update(percent=40, stage="uploading")
    reporter.finish()
    records = read_log(store, "job-2")
    assert [(record["percent"], record["stage"]) for record in records] == [
        (0, "starting"),
        (1, "rendering"),
        (40, "uploading"),
        (100, "done"),
    ]


def test_the_percent_never_goes_backwards_and_stays_below_100_until_finished(store):
    reporter = ProgressReporter(store=store, job_id="job-3", call_id="c", throttle_seconds=0)
    reporter.start()
    for percent in [10, 30, 20, 150, 5]:
        reporter.update(percent=percent, stage="rendering", message=f"at {percent}")
    reporter.stop()
    assert [record["percent"] for record in read_log(store, "job-3")] == [0, 10, 30, 30, 99, 99]


def test_the_record_is_rewritten_as_a_heartbeat_when_nothing_moves(store):
    reporter = ProgressReporter(store=store, job_id="job-4", call_id="c", heartbeat_seconds=0.3)
    reporter.start()
    reporter.update(percent=42, stage="rendering")
    time.sleep(1.5)
    reporter.stop()
    records = read_log(store, "job-4")
    beats = [record for record in records if record["percent"] == 42]
    assert len(beats) >= 3
    assert len({record["worker_time"] for record in beats}) == len(beats)
    times = [datetime.fromisoformat(record["worker_time"]) for record in records]
    assert times == sorted(times), "the log keeps every record, in the order written"


def test_a_rerun_of_the_same_call_counts_as_the_next_attempt(store, sample_clips):
    """Modal restarts a preempted input with the same call id; its new records must say they are attempt 2."""
    inputs = {1: add_input(store, sample_clips["silent"])}
    payload = make_payload("multi_clip", {"clips": [{"clip_id": 1, "start": 0, "end": 1}]}, inputs)
    run_export(payload, store=store, call_id="fc-preempted")
    run_export(payload, store=store, call_id="fc-preempted")
    attempts = [record["attempt"] for record in read_log(store, payload["job_id"])]
    assert attempts[0] == 1 and attempts[-1] == 2
    assert attempts == sorted(attempts)

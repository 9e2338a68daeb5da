"""The worker's time-left estimate: from the job's own history, shown once stable, moving smoothly."""

import math

import pytest

from modal_jobs.eta import (
    MAX_STEP,
    MIN_PERCENT,
    MIN_RENDERING_SECONDS,
    MIN_STEP_SECONDS,
    RemainingTime,
    RenderWork,
)
from modal_jobs.progress import ProgressReporter

from .conftest import read_log

TOTAL = 100.0


def rendering(estimator, at, processed, total=TOTAL):
    """One rendering observation, with the percent the worker gives it (rendering is 10 to 95 %)."""
    percent = int(10 + 85 * processed / total)
    return estimator.observe(at, stage="rendering", percent=percent, processed_seconds=processed, total_seconds=total)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_constant_rendering_rate_gives_exactly_the_time_left():
    estimator = RemainingTime()
    estimates = {second: rendering(estimator, 50.0 + second, 5.0 * second) for second in range(21)}
    shown = {second: value for second, value in estimates.items() if value is not None}
    assert shown, estimates
    for second, value in shown.items():
        assert value == pytest.approx((TOTAL - 5.0 * second) / 5.0)
    assert shown[20] == pytest.approx(0.0)


def test_nothing_is_estimated_before_rendering():
    estimator = RemainingTime()
    assert estimator.observe(0.0, stage="starting", percent=0) is None
    for second in range(1, 30):
        assert estimator.observe(float(second), stage="downloading", percent=min(9, second)) is None


def test_nothing_is_shown_before_rendering_has_run_long_enough():
    estimator = RemainingTime(min_percent=0)
    rendering(estimator, 0.0, 0.0)
    # Fast enough to be far along, but not yet MIN_RENDERING_SECONDS into rendering.
    assert rendering(estimator, MIN_RENDERING_SECONDS / 2, 40.0) is None
    assert rendering(estimator, MIN_RENDERING_SECONDS - 0.01, 50.0) is None
    assert rendering(estimator, MIN_RENDERING_SECONDS, 52.0) is not None


def test_nothing_is_shown_before_the_job_is_far_enough_along():
    estimator = RemainingTime(min_rendering_seconds=0)
    rendering(estimator, 0.0, 0.0)
    slow = [rendering(estimator, float(second), 0.5 * second) for second in range(1, 11)]
    assert all(int(10 + 85 * 0.5 * second / TOTAL) < MIN_PERCENT for second in range(1, 11))
    assert slow == [None] * 10
    assert rendering(estimator, 20.0, 10.0) is not None  # 18 %


def test_a_change_of_pace_moves_the_estimate_by_at_most_the_limit_per_update_and_it_still_gets_there():
    # 20 media seconds a second for 10 s, then 2 a second: the measured time left climbs faster than it may be shown.
    observations = [(float(second), 20.0 * second) for second in range(11)]
    observations += [(float(second), 200.0 + 2.0 * (second - 10)) for second in range(11, 120)]
    smooth = RemainingTime()
    unlimited = RemainingTime(max_step=math.inf, min_step_seconds=math.inf)
    previous, held_back = None, 0
    for at, processed in observations:
        shown = rendering(smooth, at, processed, total=1000.0)
        measured = rendering(unlimited, at, processed, total=1000.0)
        if shown is None:
            continue
        if previous is not None:
            counted_down = max(0.0, previous[1] - (at - previous[0]))
            limit = max(MIN_STEP_SECONDS, MAX_STEP * counted_down) * max(1.0, at - previous[0])
            assert abs(shown - counted_down) <= limit + 1e-9
            held_back += abs(measured - counted_down) > limit + 1e-9
        previous = (at, shown)
    assert held_back > 0
    assert shown == pytest.approx(measured)


def test_the_limit_per_update_grows_with_the_time_since_the_last_one():
    estimator = RemainingTime()
    for second in range(0, 6):
        rendering(estimator, float(second), 5.0 * second)
    before = estimator.counted_down(5.0)
    # A stall: the next record is a heartbeat 30 s later with no progress; the estimate may rise by more than 10 %.
    after = rendering(estimator, 35.0, 25.0)
    counted_down = max(0.0, before - 30.0)
    assert after > counted_down + max(MIN_STEP_SECONDS, MAX_STEP * counted_down)


def test_once_shown_the_estimate_counts_down_through_the_upload_and_never_below_zero():
    estimator = RemainingTime()
    for second in range(0, 10):
        rendering(estimator, float(second), 5.0 * second)
    left = estimator.counted_down(9.0)
    uploading = estimator.observe(11.0, stage="uploading", percent=96, processed_seconds=TOTAL, total_seconds=TOTAL)
    assert uploading == pytest.approx(left - 2.0)
    assert estimator.observe(60.0, stage="uploading", percent=98, processed_seconds=TOTAL, total_seconds=TOTAL) == 0.0


def test_the_end_is_zero_and_a_failure_is_blank():
    done = RemainingTime()
    assert done.observe(5.0, stage="done", percent=100, processed_seconds=TOTAL, total_seconds=TOTAL) == 0.0
    failed = RemainingTime()
    for second in range(0, 10):
        rendering(failed, float(second), 5.0 * second)
    assert failed.observe(10.0, stage="failed", percent=52, processed_seconds=50.0, total_seconds=TOTAL) is None


def test_every_record_the_reporter_writes_carries_the_time_left(store):
    clock = FakeClock()
    reporter = ProgressReporter(store=store, job_id="eta-1", call_id="c", heartbeat_seconds=3600, clock=clock)
    reporter.start(message="Starting export")
    reporter.update(percent=5, stage="downloading")
    reporter.update(percent=10, stage="rendering", processed_seconds=0.0, total_seconds=TOTAL)
    for second in range(1, 20):
        clock.now += 1.0
        processed = 5.0 * second
        reporter.update(percent=10 + 85 * processed / TOTAL, stage="rendering", processed_seconds=processed)
    clock.now += 1.0
    reporter.update(percent=96, stage="uploading")
    reporter.finish()
    records = read_log(store, "eta-1")
    assert all("remaining_seconds" in record for record in records)
    assert [record["remaining_seconds"] for record in records[:3]] == [None, None, None]
    rendered = [record for record in records if record["stage"] == "rendering" and record["remaining_seconds"]]
    assert len(rendered) >= 10
    for record in rendered:
        assert record["remaining_seconds"] == pytest.approx((TOTAL - record["processed_seconds"]) / 5.0, abs=0.05)
    assert records[-1]["stage"] == "done" and records[-1]["remaining_seconds"] == 0


def test_a_failed_export_writes_no_time_left(store):
    clock = FakeClock()
    reporter = ProgressReporter(store=store, job_id="eta-2", call_id="c", heartbeat_seconds=3600, clock=clock)
    reporter.start()
    reporter.update(percent=10, stage="rendering", processed_seconds=0.0, total_seconds=TOTAL)
    for second in range(1, 10):
        clock.now += 1.0
        reporter.update(percent=10 + 85 * 5 * second / TOTAL, stage="rendering", processed_seconds=5.0 * second)
    reporter.fail("ffmpeg exited with 1")
    records = read_log(store, "eta-2")
    assert records[-2]["remaining_seconds"] is not None
    assert records[-1]["stage"] == "failed" and records[-1]["remaining_seconds"] is None


def test_render_work_weighs_each_part_by_its_cost_and_adds_up_to_the_media_seconds():
    work = RenderWork([10.0, 10.0], [3.0, 1.0])  # the first clip takes three times as long per second

    assert [work.done(seconds) for seconds in (0, 5, 10, 15, 20, 25)] == [0, 7.5, 15, 17.5, 20, 20]


def test_render_work_without_costs_is_the_media_seconds():
    assert RenderWork([10.0, 10.0], []).done(12.5) == 12.5


def test_a_slow_first_clip_no_longer_makes_the_whole_export_look_slow():
    """
    Before: rendering 60 s of a slow clip (2 s per s) then 60 s of a fast one (0.5 s per s), the estimate at a
    third of the way said 160 s left where 70 s were: the first clip's pace, taken for the whole export's.
    """
    parts, costs = [60.0, 60.0], [2.0, 0.5]
    work = RenderWork(parts, costs)
    weighted, plain = RemainingTime(), RemainingTime()
    at, errors = 0.0, {"weighted": [], "plain": []}
    for media in range(0, 121):
        record = {"stage": "rendering", "percent": int(10 + 85 * media / 120), "processed_seconds": media,
                  "total_seconds": 120.0, "processed_work": work.done(media), "total_work": 120.0}  # fmt: skip
        truly_left = 2.0 * max(0, 60 - media) + 0.5 * min(60, 120 - media)
        for name, estimator, fields in (
            ("weighted", weighted, record),
            ("plain", plain, record | {"processed_work": None}),
        ):
            estimate = estimator.observe_record(at, fields)
            if estimate is not None and 20 <= media <= 60:
                errors[name].append(abs(estimate - truly_left) / truly_left)
        at += 2.0 if media < 60 else 0.5

    assert max(errors["weighted"]) < 0.05
    assert min(errors["plain"]) > 0.3

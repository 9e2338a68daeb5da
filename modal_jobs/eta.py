"""
How long an export has left, estimated by the worker from the job's own history.

The worker is the only one who sees a job's whole history, so it makes the
estimate and writes it into every progress record (`remaining_seconds`); a page
opened at any point shows the same estimate at once and counts it down from the
record's worker_time. Pure Python, no Django: it runs in a bare container.

Chosen by replaying real `progress.log` traces of the three export kinds
(`make bench`, figure 8, which also replays the EWMA alternative):

- The rate is the average of media seconds rendered per second since rendering
  began. An EWMA of the rate (time constants of 5 to 20 s tried) follows a
  change of pace sooner but also every passing hiccup, so its estimate swings
  back and forth, the very complaint of issue 17, and it was no more accurate.
- Nothing is shown until rendering has run MIN_RENDERING_SECONDS and the job is
  MIN_PERCENT done: before that the rate is ffmpeg starting, not its pace. Once
  shown, an estimate stays until the end (a blank that comes back is a jump too).
- A new estimate moves at most MAX_STEP of the previous one as counted down to
  now, or MIN_STEP_SECONDS (more than the countdown's own second, so a small
  estimate can still rise), per second since it was made: pages see it glide.
- Rendering is nearly all of an export's time; after it (probe, upload, result)
  the estimate only counts down, to zero at the least. 0 means done or nearly.
- The rate counts work, not media seconds: where the parts of a render go at
  paces of their own (a multi-clip export's clips, by their content), each
  media second weighs its part's measured cost (RenderWork), so a slow first
  clip does not make the whole export look slow.
"""

from __future__ import annotations

RENDERING = "rendering"
DONE = "done"
FAILED = "failed"

MIN_PERCENT = 15
MIN_RENDERING_SECONDS = 3.0
MAX_STEP = 0.1
MIN_STEP_SECONDS = 2.0


class RenderWork:
    """
    A render's media seconds weighted by each part's cost (pipeline.part_costs), scaled so that the whole
    render's work equals its media seconds: with no costs, work is media seconds.
    """

    def __init__(self, part_seconds: list[float], costs: list[float]):
        weighed = list(zip(part_seconds, costs, strict=True)) if costs else []
        mean_cost = sum(seconds * cost for seconds, cost in weighed) / sum(part_seconds) if weighed else 1.0
        self.parts = [(seconds, cost / mean_cost) for seconds, cost in weighed]  # (media seconds, weight)

    def done(self, media_seconds: float) -> float:
        """The work in the first `media_seconds` of the render."""
        if not self.parts:
            return media_seconds
        work, left = 0.0, media_seconds
        for seconds, weight in self.parts:
            work += min(left, seconds) * weight
            left -= seconds
            if left <= 0:
                break
        return work


class RemainingTime:
    """
    Feed it every progress record as it is written; it answers the seconds left, or None while it is not stable.

    `at` is any clock in seconds that never goes backwards (the worker's monotonic clock, or a trace's
    worker_time when a trace is replayed).
    """

    def __init__(
        self,
        *,
        min_percent: float = MIN_PERCENT,
        min_rendering_seconds: float = MIN_RENDERING_SECONDS,
        max_step: float = MAX_STEP,
        min_step_seconds: float = MIN_STEP_SECONDS,
    ):
        self.min_percent = min_percent
        self.min_rendering_seconds = min_rendering_seconds
        self.max_step = max_step
        self.min_step_seconds = min_step_seconds
        self._rendering_since: tuple[float, float] | None = None  # (at, processed seconds) when rendering began
        self._shown: tuple[float, float] | None = None  # (at, seconds left) of the last estimate given

    def observe(
        self, at: float, *, stage: str, percent: float, processed_seconds: float = 0.0, total_seconds: float = 0.0
    ) -> float | None:
        if stage == DONE:
            self._shown = (at, 0.0)
            return 0.0
        if stage == FAILED:
            self._shown = None
            return None
        measured = self._measure(at, stage, percent, processed_seconds, total_seconds)
        if self._shown is None:
            if measured is None:
                return None
            self._shown = (at, measured)
            return measured
        counted_down = self.counted_down(at)
        if measured is None:
            shown = counted_down
        else:
            elapsed = max(1.0, at - self._shown[0])
            limit = max(self.min_step_seconds, self.max_step * counted_down) * elapsed
            shown = min(max(measured, counted_down - limit), counted_down + limit)
        self._shown = (at, shown)
        return shown

    def observe_record(self, at: float, record) -> float | None:
        """observe() a progress record (a mapping of its fields): by its work where it has one, else its seconds."""
        work = record.get("processed_work") is not None and record.get("total_work") is not None
        return self.observe(
            at,
            stage=record["stage"],
            percent=record["percent"],
            processed_seconds=record["processed_work" if work else "processed_seconds"],
            total_seconds=record["total_work" if work else "total_seconds"],
        )

    def counted_down(self, at: float) -> float:
        """The last estimate, less the time since it was made (what a page shows at `at`)."""
        if self._shown is None:
            raise ValueError("No estimate yet.")
        made_at, seconds = self._shown
        return max(0.0, seconds - (at - made_at))

    def _measure(self, at, stage, percent, processed_seconds, total_seconds) -> float | None:
        """Seconds left at the average rendering rate so far; None outside rendering or before the gate."""
        if stage != RENDERING or total_seconds <= 0:
            return None
        if self._rendering_since is None:
            self._rendering_since = (at, processed_seconds)
        started_at, processed_at_start = self._rendering_since
        elapsed = at - started_at
        done = processed_seconds - processed_at_start
        if done <= 0 or elapsed < self.min_rendering_seconds or percent < self.min_percent:
            return None
        return max(0.0, total_seconds - processed_seconds) * elapsed / done

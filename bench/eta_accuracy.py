"""
Figure 8: how right the time-left estimate is, and how the browser's old one did.

The three export kinds are rendered one after another by the local executor (a
worker process each, as in production) from the demo's three test patterns at
640x360 (cheap to make: 20 s of each pattern, looped by stream copy), long enough
to take about half a minute each here. Each job's real `progress.log` is kept and
replayed through the worker's estimator (modal_jobs/eta.py); the replay is
checked against the `remaining_seconds` the worker wrote.

The true time left at a record is the trace's last worker_time (the 100 % record)
minus the record's. The error of a record is |estimate - true| / true, counted
for records at 20 % or more and with at least MIN_TRUE_SECONDS truly left (in
the last seconds a tenth of a second is a large fraction and nobody reads it). A
counted record with no estimate is reported as blank, not as an error.

Baseline: the browser's old estimate (static/js/exports.js etaFor before issue 17):
the rate of percent since the page first saw the job, nothing for the first 3 s,
simulated for PAGE_OPENS pages opened at random times of each trace (seeded), its
raw seconds (the page rounded them to minutes, which only made it worse).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import statistics
import time
import uuid
from datetime import datetime
from pathlib import Path

from bench.common import BENCH_DATA
from modal_jobs.eta import RemainingTime
from modal_jobs.executors import CallStatus
from modal_jobs.kinds import KINDS

FROM_PERCENT = 20
MIN_TRUE_SECONDS = 5.0
PAGE_OPENS = 20
WIDTH, HEIGHT = 640, 360
SEED_SECONDS = 20
CLIP_SECONDS = (160, 80, 80)  # the first clip is long enough for the single-clip kinds on its own
MULTI_CLIP_SECONDS = 80  # of each clip: 240 s in all
RENDER_TIMEOUT_SECONDS = 600
REPLAY_TOLERANCE_SECONDS = 0.2  # the worker rounds to 0.1 s, and its clock is monotonic, not worker_time
RING = {"x": 0.5, "y": 0.5, "radius": 0.1, "color": "#FFD400"}


def make_clips(folder: Path) -> list[Path]:
    """The demo's three patterns and tones at 640x360, 20 s rendered then looped by stream copy."""
    from modal_jobs.media import generate_test_clip, run_ffmpeg
    from projects.management.commands.seed_demo import DEMO_CLIPS

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for (_name, pattern, tone_hz), seconds in zip(DEMO_CLIPS, CLIP_SECONDS, strict=True):
        seed, path = folder / f"seed-{pattern}.mp4", folder / f"{pattern}.mp4"
        generate_test_clip(seed, pattern=pattern, tone_hz=tone_hz, seconds=SEED_SECONDS, width=WIDTH, height=HEIGHT)
        loops = math.ceil(seconds / SEED_SECONDS) - 1
        run_ffmpeg(["-stream_loop", str(loops), "-i", str(seed), "-c", "copy", "-movflags", "+faststart", str(path)])
        seed.unlink()
        paths.append(path)
    return paths


def payloads(store, clips: list[Path]) -> dict[str, dict]:
    """The payload of each kind, as the app would spawn it, over the clips put in the store."""
    from modal_jobs.media import probe
    from modal_jobs.schema import PAYLOAD_SCHEMA_VERSION

    inputs = {}
    for number, path in enumerate(clips, start=1):
        key = f"projects/1/clips/{path.name}"
        target = store.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        info = probe(path)
        inputs[str(number)] = {
            "key": key,
            "duration": info.duration,
            "width": info.display_width,
            "height": info.display_height,
            "has_audio": info.has_audio,
        }
    length = inputs["1"]["duration"]
    params = {
        "multi_clip": {"clips": [{"clip_id": n, "start": 0, "end": MULTI_CLIP_SECONDS} for n in (1, 2, 3)]},
        "framing_ai": {
            "clip_id": 1,
            "aspect": "9:16",
            "height": 640,
            "keyframes": [{"t": 0, "x": 0.3}, {"t": length / 2, "x": 0.7}, {"t": length, "x": 0.5}],
        },
        "overlay": {
            "clip_id": 1,
            "highlights": [
                {**RING, "start": length * 0.1, "end": length * 0.4},
                {**RING, "x": 0.3, "start": length * 0.5, "end": length * 0.8},
            ],
        },
    }
    used = {"multi_clip": ("1", "2", "3"), "framing_ai": ("1",), "overlay": ("1",)}
    return {
        kind: {
            "schema_version": PAYLOAD_SCHEMA_VERSION,
            "job_id": str(uuid.uuid4()),
            "kind": kind,
            "params": params[kind],
            "inputs": {number: inputs[number] for number in used[kind]},
        }
        for kind in KINDS
    }


def render_traces(folder: Path) -> dict[str, Path]:
    """Render each kind with the local executor, one at a time; return where each progress.log was kept."""
    from modal_jobs.local_backend import LocalBackend
    from modal_jobs.records import job_key
    from modal_jobs.store import FileSystemStore

    store = FileSystemStore(folder / "store")
    backend = LocalBackend(
        root=folder / "executor",
        store_config={"type": "filesystem", "root": str(folder / "store")},
        max_workers=1,
        time_limit_seconds=RENDER_TIMEOUT_SECONDS,
    )
    traces = {}
    for kind, payload in payloads(store, make_clips(folder / "clips")).items():
        call_id = backend.spawn(kind, payload)
        deadline = time.monotonic() + RENDER_TIMEOUT_SECONDS + 30
        while (state := backend.poll(call_id)).status is CallStatus.RUNNING:
            if time.monotonic() > deadline:
                raise RuntimeError(f"The {kind} render did not end (call {call_id}).")
            time.sleep(0.5)
        if state.result is None or not state.result.succeeded:
            raise RuntimeError(f"The {kind} render failed: {state}")
        traces[kind] = folder / f"{kind}.progress.log"
        shutil.copyfile(store.path(job_key(payload["job_id"], "progress.log")), traces[kind])
    return traces


def load(path: Path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        record["at"] = datetime.fromisoformat(record["worker_time"]).timestamp()
    return records


def replay(records: list[dict], estimator: RemainingTime) -> list[float | None]:
    return [estimator.observe_record(record["at"], record) for record in records]


def counted(records: list[dict]) -> list[int]:
    """Indexes of the records the errors are counted on: 20 % or more done, MIN_TRUE_SECONDS or more left."""
    end = records[-1]["at"]
    return [
        index
        for index, record in enumerate(records)
        if record["percent"] >= FROM_PERCENT and end - record["at"] >= MIN_TRUE_SECONDS
    ]


def score(records: list[dict], shown: list[tuple[int, float | None]]) -> dict:
    """Errors over (record index, estimate) pairs that have an estimate; the others are blanks."""
    end = records[-1]["at"]
    errors = [
        round(abs(estimate - (end - records[index]["at"])) / (end - records[index]["at"]), 4)
        for index, estimate in shown
        if estimate is not None
    ]
    return summary(errors, blank=sum(1 for _, estimate in shown if estimate is None))


def summary(errors: list[float], *, blank: int) -> dict:
    return {
        "counted": len(errors) + blank,
        "blank": blank,
        "median": statistics.median(errors) if errors else None,
        "worst": max(errors) if errors else None,
        "errors": errors,
    }


def pooled(scores: list[dict]) -> dict:
    return summary([error for one in scores for error in one["errors"]], blank=sum(one["blank"] for one in scores))


def largest_step(records: list[dict], estimates: list[float | None]) -> float:
    """The largest move of an estimate away from where the previous one had counted down to, relative to it."""
    largest, previous = 0.0, None
    for record, estimate in zip(records, estimates, strict=True):
        if estimate is None or record["stage"] == "done":
            continue
        if previous is not None:
            counted_down = previous[1] - (record["at"] - previous[0])
            if counted_down >= MIN_TRUE_SECONDS:
                largest = max(largest, abs(estimate - counted_down) / counted_down)
        previous = (record["at"], estimate)
    return largest


def pace(records: list[dict]) -> tuple[float, float]:
    """The slowest and fastest rendering rate (media seconds per second) over each tenth of the media."""
    rendering = [record for record in records if record["stage"] == "rendering"]
    total = rendering[-1]["total_seconds"]
    rates, start = [], rendering[0]
    for record in rendering[1:]:
        if record["processed_seconds"] - start["processed_seconds"] >= total / 10 and record["at"] > start["at"]:
            rates.append((record["processed_seconds"] - start["processed_seconds"]) / (record["at"] - start["at"]))
            start = record
    return (min(rates), max(rates)) if rates else (0.0, 0.0)


def browser_estimates(records: list[dict], opened_at: float) -> dict[int, float | None]:
    """The old etaFor on a page opened at `opened_at`: percent per second since its first sight of the job."""
    first = None
    before = [record for record in records if record["at"] <= opened_at]
    if before and before[-1]["percent"] > 0:
        first = (opened_at, before[-1]["percent"])
    wanted = set(counted(records))
    shown: dict[int, float | None] = {}
    for index, record in enumerate(records):
        if record["at"] <= opened_at or record["stage"] == "done" or record["percent"] <= 0:
            continue
        if first is None:
            first = (record["at"], record["percent"])
            estimate = None
        else:
            gained, elapsed = record["percent"] - first[1], record["at"] - first[0]
            estimate = (100 - record["percent"]) * elapsed / gained if gained > 0 and elapsed >= 3 else None
        if index in wanted:
            shown[index] = estimate
    return shown


class EwmaRate(RemainingTime):
    """The alternative measured beside the chosen method: an EWMA of the rendering rate (time constant TAU)."""

    TAU = 10.0

    def _measure(self, at, stage, percent, processed_seconds, total_seconds):
        if stage != "rendering" or total_seconds <= 0:
            return None
        if self._rendering_since is None:
            self._rendering_since = (at, processed_seconds)
            self._last, self._rate = (at, processed_seconds), None
        last_at, last_processed = self._last
        if at > last_at:
            instant = (processed_seconds - last_processed) / (at - last_at)
            weight = 1 - math.exp(-(at - last_at) / self.TAU)
            self._rate = instant if self._rate is None else self._rate + weight * (instant - self._rate)
            self._last = (at, processed_seconds)
        started_at, _ = self._rendering_since
        if not self._rate or at - started_at < self.min_rendering_seconds or percent < self.min_percent:
            return None
        return max(0.0, total_seconds - processed_seconds) / self._rate


def measure(records: list[dict], rng: random.Random) -> dict:
    indexes = counted(records)
    estimates = replay(records, RemainingTime())
    written = [record.get("remaining_seconds") for record in records]
    mismatch = max(
        abs(ours - theirs) if ours is not None and theirs is not None else (0.0 if ours is theirs else math.inf)
        for ours, theirs in zip(estimates, written, strict=True)
    )
    if mismatch > REPLAY_TOLERANCE_SECONDS:
        raise RuntimeError(f"The replay differs from what the worker wrote by {mismatch:.2f} s: a different estimator?")
    ewma_estimates = replay(records, EwmaRate())
    end_of_counting = records[indexes[-1]]["at"] if indexes else records[-1]["at"]
    pages = [browser_estimates(records, rng.uniform(records[0]["at"], end_of_counting)) for _ in range(PAGE_OPENS)]
    shown_at = [record["percent"] for record, estimate in zip(records, estimates, strict=True) if estimate is not None]
    return {
        "job_seconds": records[-1]["at"] - records[0]["at"],
        "media_seconds": max(record["total_seconds"] for record in records),
        "records": len(records),
        "pace": pace(records),
        "first_shown_percent": shown_at[0] if shown_at else None,
        "largest_step": largest_step(records, estimates),
        "replay_vs_written_seconds": mismatch,
        **score(records, [(index, estimates[index]) for index in indexes]),
        "ewma": score(records, [(index, ewma_estimates[index]) for index in indexes])
        | {"largest_step": largest_step(records, ewma_estimates)},
        "baseline": score(records, [pair for page in pages for pair in page.items()]),
    }


def run() -> dict:
    folder = BENCH_DATA / "eta"
    shutil.rmtree(folder, ignore_errors=True)
    traces = render_traces(folder)
    rng = random.Random(8)
    kinds = {kind: {**measure(load(path), rng), "trace": str(path)} for kind, path in traces.items()}
    together = {
        "estimate": pooled(list(kinds.values())),
        "ewma": pooled([kind["ewma"] for kind in kinds.values()]),
        "baseline": pooled([kind["baseline"] for kind in kinds.values()]),
    }
    return {"kinds": kinds, "all": together, "page_opens": PAGE_OPENS}

"""
Figure 9: what the workers' signed events change (issue 19), each against the same run's baseline without them.

- Progress latency, worker record to WebSocket client, 50 active jobs: figure 1's
  measurement with each record also sent as the worker's event (modal_jobs/events.py).
- Finalization lag with nobody watching and no cron: the worker stores its result,
  then sends the result event; the lag is the backend's "completed" event minus the
  result's finished_at (one clock: this machine). Without events nothing finalizes
  the job until someone looks.
- Executor polls per export on the happy path with its owner's socket open, with
  and without events. Time runs ten times faster than life (the tick, the claim
  intervals, the backoff and the worker's writes all a tenth), so an export of
  60 s takes 6 s here and one of 10 minutes 60 s; counts are what they would be.
- The events endpoint's throughput on one daphne process: senders posting signed
  progress events for their own jobs back to back, 1, 4 and 16 at once; events/s
  and p95 at each, and the most events/s with p95 under 50 ms.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

from bench.common import BenchServer, make_active_jobs, make_projects, make_users, percentile, retire
from bench.progress_latency import run as progress_latency
from bench.progress_latency import write_progress
from bench.sockets import close_all, listen, open_socket
from testing_support.loopback import session_cookie

FINALIZED_JOBS = 20
SPEED_UP = 10
EXPORT_SECONDS = (60, 600)
THROUGHPUT_SENDERS = (1, 4, 16)
THROUGHPUT_SECONDS = 8.0
LATENCY_GOAL_SECONDS = 0.05


def sender_for(server, job):
    """The sender a worker of `job` has, posting to `server`: the payload's event target, as the app builds it."""
    from exports.events import event_target
    from modal_jobs.events import EventSender

    return EventSender(**event_target(job, server.url), job_id=str(job.pk))


def finalization_lag() -> dict:
    """Each job's output and result stored, then its result event sent; the lag until the job is complete."""
    from exports.models import ExportJob, ExportJobEvent
    from exports.storage import object_store
    from modal_jobs.records import OUTPUT, RESULT, ExportResult, job_key

    owners = make_users(FINALIZED_JOBS, "finalize-")
    jobs = make_active_jobs([(project.owner, project) for project in make_projects(owners)])
    unwatched = make_active_jobs([(project.owner, project) for project in make_projects(owners[:5])], kind="multi_clip")
    store = object_store()
    for job in unwatched:  # the baseline: results stored, no event sent, nobody looking
        result = ExportResult(status="success", output_key=job_key(str(job.pk), OUTPUT), finished_at=datetime.now(UTC))
        store.write_bytes(job_key(str(job.pk), OUTPUT), b"video")
        store.write_bytes(job_key(str(job.pk), RESULT), result.to_json())
    finished_at = {}
    with BenchServer("finalize") as server:
        for job in jobs:
            key = job_key(str(job.pk), OUTPUT)
            store.write_bytes(key, b"video")
            finished_at[job.pk] = datetime.now(UTC)
            result = ExportResult(status="success", output_key=key, duration=1.0, width=2, height=2, size=5,
                                  finished_at=finished_at[job.pk])  # fmt: skip
            sender_for(server, job).finished(result)
            time.sleep(0.05)
        time.sleep(1)
    completed = dict(ExportJobEvent.objects.filter(job__in=jobs, kind="completed").values_list("job_id", "created_at"))
    lags = [(completed[job.pk] - finished_at[job.pk]).total_seconds() for job in jobs if job.pk in completed]
    unfinalized = ExportJob.objects.filter(pk__in=[job.pk for job in unwatched], status="processing").count()
    retire(jobs + unwatched)
    return {"jobs": len(jobs), "finalized": len(lags), "p50": percentile(lags, 0.5), "p95": percentile(lags, 0.95),
            "max": max(lags), "baseline_jobs": len(unwatched), "baseline_still_processing": unfinalized}  # fmt: skip


def polls_per_export(export_seconds: float, *, events: bool = False) -> int:
    """One export's executor polls while its owner's socket is open and its worker reports (ten times faster)."""
    owner = make_users(1, f"polls-{export_seconds}-{'events' if events else 'looks'}-")[0]
    job = make_active_jobs([(owner, make_projects([owner])[0])])[0]
    faster = {
        "EXPORTS_SOCKET_TICK_SECONDS": str(1 / SPEED_UP),
        "EXPORTS_PROGRESS_INTERVAL_SECONDS": str(1 / SPEED_UP),
        "EXPORTS_EXECUTOR_INTERVAL_SECONDS": str(3 / SPEED_UP),
        "EXPORTS_EVENTS_BACKOFF_SECONDS": str(60 / SPEED_UP),
    }
    cookie = session_cookie(owner)
    with BenchServer(f"polls-{export_seconds}-{events}", **faster) as server:

        async def watch() -> int:
            socket = await open_socket(server, cookie)
            listener = asyncio.create_task(listen(socket, lambda job, at: None))
            before = server.counts()["polls"]
            stop = threading.Event()
            events_to = server.url if events else None
            writer = threading.Thread(
                target=write_progress, args=([job], stop), kwargs={"events_to": events_to, "every": 1 / SPEED_UP}
            )
            writer.start()
            await asyncio.sleep(export_seconds / SPEED_UP)
            stop.set()
            writer.join()
            polls = server.counts()["polls"] - before
            await close_all([socket], [listener])
            return polls

        polls = asyncio.run(watch())
    retire([job])
    return polls


def post_back_to_back(server, jobs, seconds: float) -> list[float]:
    """Each job's sender posts signed progress events one after another for `seconds`; every request's time."""
    from modal_jobs.events import new_message_id
    from modal_jobs.records import ProgressRecord, WorkerEvent

    latencies: list[float] = []
    refused: list = []
    stop = threading.Event()

    def send(job) -> None:
        sender = sender_for(server, job)  # only its deliver() is used: one synchronous signed POST
        percent = 0
        while not stop.is_set():
            percent = min(99, percent + 1)
            record = ProgressRecord(percent=percent, stage="rendering", worker_time=datetime.now(UTC))
            event = WorkerEvent(type="progress", job_id=str(job.pk), record=record)
            started = time.perf_counter()
            status = sender.deliver(event, new_message_id())
            latencies.append(time.perf_counter() - started)
            if status != 200:
                refused.append(status)

    threads = [threading.Thread(target=send, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    if refused:
        raise RuntimeError(f"{len(refused)} events refused, e.g. {refused[0]}")
    return latencies


def throughput() -> dict:
    owners = make_users(max(THROUGHPUT_SENDERS), "throughput-")
    jobs = make_active_jobs([(project.owner, project) for project in make_projects(owners)])
    results = {}
    with BenchServer("events-throughput") as server:
        for senders in THROUGHPUT_SENDERS:
            latencies = post_back_to_back(server, jobs[:senders], THROUGHPUT_SECONDS)
            results[senders] = {
                "per_second": len(latencies) / THROUGHPUT_SECONDS,
                "p50": percentile(latencies, 0.5),
                "p95": percentile(latencies, 0.95),
            }
    retire(jobs)
    within = [one["per_second"] for one in results.values() if one["p95"] < LATENCY_GOAL_SECONDS]
    return {"by_senders": results, "best_within_goal": max(within) if within else 0.0}


def run() -> dict:
    return {
        "latency": {
            "events": progress_latency(50, 25, events=True, name="events-latency"),
            "baseline": progress_latency(50, 25, name="events-latency"),
        },
        "finalization": finalization_lag(),
        "polls": {
            str(seconds): {
                "events": polls_per_export(seconds, events=True),
                "baseline": polls_per_export(seconds, events=False),
            }
            for seconds in EXPORT_SECONDS
        },
        "throughput": throughput(),
    }

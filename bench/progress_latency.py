"""
Figure 1: from the worker writing its progress record to a WebSocket client
receiving the change, with the default 1 s tick.

Each job's "worker" is the real ProgressReporter writing to the real store
once a second (its production throttle), at a random phase; each job's owner
watches on one socket. Latency is the client's receive time minus the
record's worker_time, which the change carries as progress_at (one clock:
everything runs on this machine).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

from bench.common import (
    BenchServer,
    make_active_jobs,
    make_projects,
    make_users,
    percentile,
    retire,
)
from bench.sockets import close_all, epoch, listen, open_socket
from testing_support.loopback import session_cookie

WRITE_INTERVAL_SECONDS = 1.0


def write_progress(jobs, stop: threading.Event, *, events_to=None, every: float = WRITE_INTERVAL_SECONDS) -> int:
    """
    Write each job's progress record every `every` seconds, as a worker does; return how many were written.
    With `events_to` (a server's base URL) each record is also sent as the worker's signed event.
    """
    from exports.events import event_target
    from exports.storage import object_store
    from modal_jobs.events import EventSender
    from modal_jobs.progress import ProgressReporter

    store = object_store()
    senders = {}
    if events_to:
        senders = {job.pk: EventSender(**event_target(job, events_to), job_id=str(job.pk)) for job in jobs}
    reporters = {
        job.pk: ProgressReporter(
            store=store,
            job_id=str(job.pk),
            call_id=job.call_id,
            throttle_seconds=0,
            on_record=senders[job.pk].progress if senders else None,
        )
        for job in jobs
    }
    next_write = {job_id: time.monotonic() + random.random() * every for job_id in reporters}
    written = 0
    while not stop.is_set():
        job_id = min(next_write, key=next_write.get)
        stop.wait(max(0.0, next_write[job_id] - time.monotonic()))
        if stop.is_set():
            break
        written += 1
        reporters[job_id].update(percent=min(99, written), stage="rendering", message=f"Update {written}")
        next_write[job_id] += every
    for sender in senders.values():
        sender.close()
    return written


async def measure(server, cookies: list[str], jobs, seconds: float, *, events=False) -> tuple[list[float], int]:
    latencies: list[float] = []
    seen: set = set()

    def on_job(job: dict, received_at: float) -> None:
        key = (job["id"], job["progress_at"])
        if job["progress_at"] and key not in seen:
            seen.add(key)
            latencies.append(received_at - epoch(job["progress_at"]))

    sockets = [await open_socket(server, cookie) for cookie in cookies]
    listeners = [asyncio.create_task(listen(socket, on_job)) for socket in sockets]
    stop = threading.Event()
    events_to = server.url if events else None
    writer = asyncio.create_task(asyncio.to_thread(write_progress, jobs, stop, events_to=events_to))
    await asyncio.sleep(seconds)
    stop.set()
    written = await writer
    await asyncio.sleep(2)  # the last writes' changes are still on their way
    await close_all(sockets, listeners)
    return latencies, written


def run(active_jobs: int, seconds: float, *, events: bool = False, name: str = "latency") -> dict:
    """`name` tells this run's users and server apart from another run's in the same bench."""
    name = f"{name}-{'events-' if events else ''}{active_jobs}"
    owners = make_users(active_jobs, f"{name}-")
    jobs = make_active_jobs([(project.owner, project) for project in make_projects(owners)])
    cookies = [session_cookie(owner) for owner in owners]
    with BenchServer(name) as server:
        latencies, written = asyncio.run(measure(server, cookies, jobs, seconds, events=events))
    retire(jobs)
    return {
        "active_jobs": active_jobs,
        "records_written": written,
        "updates_received": len(latencies),
        "p50": percentile(latencies, 0.50),
        "p95": percentile(latencies, 0.95),
        "max": max(latencies),
    }

"""
Figure 2: executor polls and store reads per second for one active job, with
1, 10 and 50 sockets watching it (its owner's tabs), against the baseline of
each of them polling the status endpoint every second on its own, the
celery-progress way: the same endpoint with the claim intervals at 0, so every
request reads the record and asks the executor itself. A third row polls the
real endpoint (defaults), which is what the tray falls back to while its
socket is down.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request

from bench.common import BenchServer, make_active_jobs, make_projects, make_users, retire
from bench.progress_latency import write_progress
from bench.sockets import close_all, listen, open_socket
from testing_support.loopback import session_cookie

WATCHERS = (1, 10, 50)
WINDOW_SECONDS = 15.0
WARM_UP_SECONDS = 2.0


def rates(server, seconds: float) -> dict:
    before = server.counts()
    time.sleep(seconds)
    after = server.counts()
    return {name: (after[name] - before[name]) / seconds for name in ("polls", "store_reads")}


def watch_with_sockets(server, cookie: str, watchers: int) -> dict:
    async def main() -> dict:
        sockets = [await open_socket(server, cookie) for _ in range(watchers)]
        listeners = [asyncio.create_task(listen(socket, lambda job, at: None)) for socket in sockets]
        await asyncio.sleep(WARM_UP_SECONDS)
        measured = await asyncio.to_thread(rates, server, WINDOW_SECONDS)
        await close_all(sockets, listeners)
        return measured

    return asyncio.run(main())


def watch_by_polling(server, cookie: str, job_id, watchers: int) -> dict:
    """Each watcher GETs the job's status once a second, at its own phase, as a polling page would."""
    stop = threading.Event()
    failures = []

    def poller(phase: float) -> None:
        request = urllib.request.Request(f"{server.url}/api/exports/{job_id}/", headers={"Cookie": cookie})
        stop.wait(phase)
        while not stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    response.read()
            except OSError as error:
                failures.append(error)
            stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    threads = [threading.Thread(target=poller, args=(n / watchers,), daemon=True) for n in range(watchers)]
    for thread in threads:
        thread.start()
    time.sleep(WARM_UP_SECONDS)
    measured = rates(server, WINDOW_SECONDS)
    stop.set()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} status requests failed, e.g. {failures[0]}")
    return measured


def run() -> dict:
    owner = make_users(1, "amplification-")[0]
    job = make_active_jobs([(owner, make_projects([owner])[0])])[0]
    cookie = session_cookie(owner)
    stop = threading.Event()
    writer = threading.Thread(target=write_progress, args=([job], stop), daemon=True)
    writer.start()
    results = {}
    try:
        with BenchServer("amplification") as server:
            results["sockets"] = {n: watch_with_sockets(server, cookie, n) for n in WATCHERS}
            results["polling"] = {n: watch_by_polling(server, cookie, job.pk, n) for n in WATCHERS}
        unclaimed = {"EXPORTS_PROGRESS_INTERVAL_SECONDS": "0", "EXPORTS_EXECUTOR_INTERVAL_SECONDS": "0"}
        with BenchServer("amplification-baseline", **unclaimed) as server:
            results["baseline"] = {n: watch_by_polling(server, cookie, job.pk, n) for n in WATCHERS}
    finally:
        stop.set()
        writer.join()
        retire([job])
    return results

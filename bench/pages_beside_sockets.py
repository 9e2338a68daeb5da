"""
Figure 7: a page's latency on one daphne while another user holds 200 sockets
open on it, their five exports running (so every socket ticks: a session check
and a reconcile each second). The page is GET /api/projects/ of a second user;
the baseline is the same requests in the same run with no socket open.
"""

from __future__ import annotations

import asyncio

from bench.api_latency import time_requests
from bench.common import BenchServer, make_active_jobs, make_projects, make_users, percentile, retire
from bench.sockets import close_all, listen, open_socket
from testing_support.loopback import session_cookie

SOCKETS = 200
RUNNING_EXPORTS = 5
REQUESTS = 300
CONNECT_BATCH = 25
SETTLE_SECONDS = 3


def latencies(durations: list[float]) -> dict:
    return {
        "p50": percentile(durations, 0.50),
        "p95": percentile(durations, 0.95),
        "max": max(durations),
        "requests": len(durations),
    }


async def crowded(server, crowd_cookie: str, reader_cookie: str) -> dict:
    sockets, failed = [], 0
    for start in range(0, SOCKETS, CONNECT_BATCH):
        batch = min(CONNECT_BATCH, SOCKETS - start)
        opening = (open_socket(server, crowd_cookie) for _ in range(batch))
        opened = await asyncio.gather(*opening, return_exceptions=True)
        failed += sum(isinstance(socket, BaseException) for socket in opened)
        sockets += [socket for socket in opened if not isinstance(socket, BaseException)]
    listeners = [asyncio.create_task(listen(socket, lambda job, at: None)) for socket in sockets]
    await asyncio.sleep(SETTLE_SECONDS)  # every socket ticking
    durations = await asyncio.to_thread(time_requests, server, reader_cookie, "/api/projects/", REQUESTS)
    await close_all(sockets, listeners)
    return {**latencies(durations), "sockets": len(sockets), "handshakes_failed": failed}


def run() -> dict:
    crowd, reader = make_users(2, "crowd-")
    projects = make_projects([crowd], per_owner=RUNNING_EXPORTS)
    make_projects([reader], per_owner=3)
    jobs = make_active_jobs([(crowd, project) for project in projects])
    crowd_cookie, reader_cookie = session_cookie(crowd), session_cookie(reader)
    with BenchServer("crowd") as server:
        time_requests(server, reader_cookie, "/api/projects/", count=10)  # warm up
        alone = latencies(time_requests(server, reader_cookie, "/api/projects/"))
        beside = asyncio.run(crowded(server, crowd_cookie, reader_cookie))
    retire(jobs)
    return {"alone": alone, "beside_sockets": beside}

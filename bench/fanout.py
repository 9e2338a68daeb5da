"""
Figure 5: 500 sockets of one user on one daphne process. A change (dismissing
a finished job, over HTTP as the page does it) must reach every socket; we
time it from sending the request to the last socket receiving the change, and
read the server's resident memory before and after the sockets connect.
"""

from __future__ import annotations

import asyncio
import http.client
import secrets
import time

from bench.common import BenchServer, make_projects, make_users, percentile
from bench.sockets import close_all, listen, open_socket
from testing_support.loopback import session_cookie

SOCKETS = 500
CHANGES = 20
CONNECT_BATCH = 25


def finished_jobs(owner, count: int) -> list:
    from django.utils import timezone

    from exports.models import ExportJob, ExportStatus

    now = timezone.now()
    projects = make_projects([owner], per_owner=count)
    return ExportJob.objects.bulk_create(
        [
            ExportJob(owner=owner, project=project, kind="overlay", params={}, backend="modal",
                      status=ExportStatus.CANCELLED, finished_at=now)
            for project in projects
        ]
    )  # fmt: skip


async def measure(server, cookie: str, jobs) -> dict:
    resident_before = server.resident_kib()
    sockets = []
    for start in range(0, SOCKETS, CONNECT_BATCH):
        batch = min(CONNECT_BATCH, SOCKETS - start)
        sockets += await asyncio.gather(*(open_socket(server, cookie) for _ in range(batch)))
    await asyncio.sleep(2)
    resident_after = server.resident_kib()
    received: dict[str, list[float]] = {str(job.pk): [] for job in jobs}

    def on_job(job: dict, received_at: float) -> None:
        if job["id"] in received and job["status"] == "cancelled":
            received[job["id"]].append(received_at)

    listeners = [asyncio.create_task(listen(socket, on_job)) for socket in sockets]
    csrf = secrets.token_hex(16)
    headers = {
        "Cookie": f"{cookie}; csrftoken={csrf}",
        "X-CSRFToken": csrf,
        "Origin": server.url,
        "Content-Type": "application/json",
    }
    to_last, spread = [], []
    for job in jobs:
        job_id = str(job.pk)
        sent_at = time.time()
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        await asyncio.to_thread(connection.request, "POST", f"/api/exports/{job_id}/dismiss/", "{}", headers)
        response = await asyncio.to_thread(connection.getresponse)
        if response.status != 200:
            raise RuntimeError(f"Dismiss answered {response.status}: {response.read()[:200]}")
        connection.close()
        deadline = time.monotonic() + 30
        while len(received[job_id]) < SOCKETS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Only {len(received[job_id])} of {SOCKETS} sockets got the change")
            await asyncio.sleep(0.005)
        to_last.append(max(received[job_id]) - sent_at)
        spread.append(max(received[job_id]) - min(received[job_id]))
        await asyncio.sleep(0.2)
    await close_all(sockets, listeners)
    return {
        "sockets": SOCKETS,
        "changes": len(jobs),
        "to_last_p50": percentile(to_last, 0.5),
        "to_last_max": max(to_last),
        "first_to_last_p50": percentile(spread, 0.5),
        "resident_before_kib": resident_before,
        "resident_after_kib": resident_after,
        "kib_per_socket": (resident_after - resident_before) / SOCKETS,
    }


def run() -> dict:
    owner = make_users(1, "fanout-")[0]
    jobs = finished_jobs(owner, CHANGES)
    cookie = session_cookie(owner)
    with BenchServer("fanout") as server:
        return asyncio.run(measure(server, cookie, jobs))

"""
Figure 4: GET /api/exports/active/ and /api/exports/<id>/ for a user with 20
active jobs and 10,000 jobs finished days ago: latency over HTTP on one
daphne (each request runs the lazy check, so some of them ask the executor,
50 ms a call), and queries per request counted in-process, with and without
the history, to show they do not grow with it.
"""

from __future__ import annotations

import http.client
import time

from bench.common import (
    BenchServer,
    insert_finished_jobs,
    make_active_jobs,
    make_projects,
    make_users,
    percentile,
    retire,
)
from testing_support.loopback import session_cookie

ACTIVE_JOBS = 20
FINISHED_JOBS = 10_000
REQUESTS = 300
QUERY_SAMPLES = 5


def count_queries(owner, paths: dict[str, str]) -> dict[str, dict]:
    """
    Queries per request, through the same views in this process: with no check due (the usual look)
    and with every check due (the look that claims them all), the most over QUERY_SAMPLES requests each.
    """
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from bench.common import instrumented_executor
    from exports.executor import use_backend
    from exports.models import ExportJob

    use_backend(instrumented_executor())
    client = Client()
    client.force_login(owner)
    active = ExportJob.objects.owned_by(owner).active()
    counts = {}
    for name, path in paths.items():
        counts[name] = {}
        for state in ("none_due", "all_due"):
            seen = []
            for _ in range(QUERY_SAMPLES):
                checked_at = timezone.now() if state == "none_due" else None
                active.update(progress_checked_at=checked_at, executor_checked_at=checked_at)
                with CaptureQueriesContext(connection) as queries:
                    response = client.get(path)
                assert response.status_code == 200, response.content
                seen.append(len(queries))
            counts[name][state] = max(seen)
    use_backend(None)
    return counts


def time_requests(server, cookie: str, path: str, count: int = REQUESTS) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    durations = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", path, headers={"Cookie": cookie})
        response = connection.getresponse()
        response.read()
        durations.append(time.perf_counter() - started)
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}")
    connection.close()
    return durations


def run() -> dict:
    owner = make_users(1, "api-")[0]
    projects = make_projects([owner], per_owner=ACTIVE_JOBS)
    jobs = make_active_jobs([(owner, project) for project in projects])
    paths = {"active": "/api/exports/active/", "detail": f"/api/exports/{jobs[0].pk}/"}
    results = {"queries_without_history": count_queries(owner, paths)}
    insert_finished_jobs(owner, projects[0], FINISHED_JOBS, days_ago=3)
    results["queries_with_history"] = count_queries(owner, paths)
    cookie = session_cookie(owner)
    with BenchServer("api") as server:
        for name, path in paths.items():
            time_requests(server, cookie, path, count=10)  # warm up: imports, connections, caches
            durations = time_requests(server, cookie, path)
            results[name] = {
                "p50": percentile(durations, 0.50),
                "p95": percentile(durations, 0.95),
                "max": max(durations),
                "requests": len(durations),
            }
    retire(jobs)
    return results

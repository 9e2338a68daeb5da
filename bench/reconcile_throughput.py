"""
Figure 3: one `reconcile_exports` pass over 10,000 active jobs, each poll 50 ms
slow, then the same pass with 1,000,000 finished jobs beside them.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench.common import ROOT, insert_finished_jobs, make_active_jobs, make_projects, make_users

ACTIVE_JOBS = 10_000
FINISHED_JOBS = 1_000_000


def run_pass(*arguments: str) -> dict:
    from exports.models import ExportJob

    ExportJob.objects.active().update(progress_checked_at=None, executor_checked_at=None)  # all due, as after a pause
    completed = subprocess.run(
        [sys.executable, "-m", "bench.reconcile_pass", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    summary["jobs_per_second"] = summary["checked"] / summary["seconds"]
    summary["queries_per_job"] = summary["queries"] / summary["checked"]
    return summary


def add_finished_history(count: int) -> None:
    owner = make_users(1, "history-")[0]
    insert_finished_jobs(owner, make_projects([owner])[0], count)


def run(active_jobs: int = ACTIVE_JOBS, finished_jobs: int = FINISHED_JOBS) -> dict:
    from exports.models import ExportJob

    owners = make_users(active_jobs // 5, "reconcile-")
    make_active_jobs([(project.owner, project) for project in make_projects(owners, per_owner=5)])
    assert ExportJob.objects.active().count() == active_jobs
    results = {"active_only": run_pass()}
    add_finished_history(finished_jobs)
    results["with_history"] = run_pass()
    results["finished_jobs"] = ExportJob.objects.terminal().count()
    return results

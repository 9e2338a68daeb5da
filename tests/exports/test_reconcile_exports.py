"""manage.py reconcile_exports: the same reconcile_job for every active job, bounded cost, an honest dry run."""

import io
import json
import signal
import subprocess
import sys
import threading
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db.backends.signals import connection_created
from django.utils import timezone

from exports.models import ExportJob, ExportJobEvent, ExportKind, ExportStatus, WorkingVideo
from projects.models import Project

from ..factories import ExportJobFactory, ProjectFactory
from ..servers import ROOT, AppServer

pytestmark = pytest.mark.django_db(transaction=True)


def run(*arguments):
    output = io.StringIO()
    call_command("reconcile_exports", *arguments, stdout=output)
    return output.getvalue()


def database_state():
    return (
        list(ExportJob.objects.order_by("pk").values()),
        list(ExportJobEvent.objects.order_by("pk").values()),
        list(WorkingVideo.objects.order_by("pk").values()),
    )


def unknown_call_id():
    return f"local-{uuid.uuid4().hex}"


def test_it_finalizes_what_finished_and_summarizes_by_outcome(finished_call):
    finished = finished_call
    lost = ExportJobFactory(status=ExportStatus.PROCESSING, call_id=unknown_call_id())
    ExportJob.objects.filter(pk=lost.pk).update(heartbeat_seen_at=timezone.now() - timedelta(hours=2))

    summary = json.loads(run("--json"))

    assert summary["checked"] == 2
    assert summary["outcomes"] == {"completed": 1, "lost": 1}
    assert ExportJob.objects.get(pk=finished.pk).status == ExportStatus.COMPLETE
    assert run().startswith("Reconciled 0 active export(s)")


def test_a_dry_run_reports_but_changes_no_row_event_or_broadcast(finished_call, owner_broadcasts):
    owner_broadcasts.drain()  # what starting it broadcast
    before = database_state()

    output = run("--dry-run")

    assert output.splitlines()[0].startswith("Would reconcile 1 active export(s)")
    assert "completed    1" in output
    assert database_state() == before

    assert owner_broadcasts.drain() == []


def test_filters_select_jobs_by_user_id_and_age(executor, eager_checks):
    mine = ExportJobFactory(status=ExportStatus.PROCESSING, call_id=unknown_call_id())
    theirs = ExportJobFactory(status=ExportStatus.PROCESSING, call_id=unknown_call_id())
    assert json.loads(run("--json", "--user", mine.owner.username))["checked"] == 1
    assert json.loads(run("--json", "--job", str(theirs.pk)))["checked"] == 1
    assert json.loads(run("--json", "--older-than", "5"))["checked"] == 0
    assert json.loads(run("--json", "--limit", "1"))["checked"] == 1
    with pytest.raises(CommandError, match="No user named"):
        run("--user", "nobody")
    with pytest.raises(CommandError, match="UUIDs"):
        run("--job", "42")


@pytest.mark.database
def test_the_cost_per_job_is_bounded_and_counted_in_every_thread(executor, eager_checks):
    """1,000 active jobs: the queries each costs, counted on every connection the command's threads open."""
    owner = ProjectFactory().owner
    projects = Project.objects.bulk_create([Project(owner=owner, name=f"P{number}") for number in range(334)])
    kinds = list(ExportKind)
    jobs = [
        ExportJob(
            owner=owner,
            project=projects[number // 3],
            kind=kinds[number % 3],
            backend="local",
            status=ExportStatus.PROCESSING,
            call_id=unknown_call_id(),
            heartbeat_seen_at=timezone.now(),
        )
        for number in range(1000)
    ]
    ExportJob.objects.bulk_create(jobs)
    ExportJobFactory(status=ExportStatus.COMPLETE, progress=100)  # history is not looked at
    counter = {"queries": 0}
    lock = threading.Lock()

    def count(execute, sql, params, many, context):
        with lock:
            counter["queries"] += 1
        return execute(sql, params, many, context)

    def instrument(sender, connection, **kwargs):
        if count not in connection.execute_wrappers:
            connection.execute_wrappers.append(count)

    connection_created.connect(instrument)
    try:
        summary = json.loads(run("--json", "--concurrency", "8"))
    finally:
        connection_created.disconnect(instrument)

    assert summary["checked"] == 1000
    assert summary["outcomes"] == {"unchanged": 1000}
    print(f"queries per job: {counter['queries'] / 1000:.2f}")
    assert counter["queries"] / 1000 <= 5, counter


def test_the_loop_runs_pass_after_pass_and_stops_cleanly_on_sigterm(tmp_path):
    """A real sidecar process: it keeps passing until SIGTERM, then finishes the pass in hand and exits 0."""
    server = AppServer(tmp_path)
    server.manage("migrate", "--no-input")
    sidecar = subprocess.Popen(
        [sys.executable, "manage.py", "reconcile_exports", "--loop", "0.2", "--json"],
        cwd=ROOT,
        env=server.environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    passes = [json.loads(sidecar.stdout.readline()) for _ in range(3)]
    assert [summary["checked"] for summary in passes] == [0, 0, 0]
    sidecar.send_signal(signal.SIGTERM)
    assert sidecar.wait(timeout=10) == 0
    assert sidecar.stdout.read().strip().endswith("pass(es).")

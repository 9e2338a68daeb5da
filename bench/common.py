"""
What every benchmark shares: a throwaway data folder, Django set up on it, an
instrumented daphne on loopback, and percentiles. Sessions for the WebSocket and
HTTP clients, and the store's read counter, come from testing_support, as in the tests.

The executor the benchmarks talk to is the production one, ModalBackend, over
a fake of its four Modal requests (checked against the stand-in of Modal that the
backend's tests use; Modal's cloud cannot be reached from here), behind the same
fault-injecting wrapper as the tests, set to add EXECUTOR_LATENCY_SECONDS to
every call: Modal's round trip, roughly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from testing_support.loopback import free_port, wait_until_listening

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATA = ROOT / "var" / "bench"
EXECUTOR_LATENCY_SECONDS = 0.05


def prepare_environment(data_dir: Path = BENCH_DATA) -> None:
    """Point this process (and the servers it starts) at a fresh data folder, and set Django up on it."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    for name in ("DATABASE_URL", "REDIS_URL", "AWS_STORAGE_BUCKET_NAME"):
        os.environ.pop(name, None)
    os.environ.update({"DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "exports_project.settings"})
    # The workers figures start have no server to tell (figure 9 points its senders at its own): without this
    # each export of figure 6 spent 3.5 s retrying its result event against a port nothing listens on.
    os.environ["EXPORTS_EVENTS_URL"] = ""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--no-input", verbosity=0)


def memory_kib(field: str, pid: int | str = "self") -> int:
    """
    A memory figure of a process from /proc: VmRSS (resident now) or VmHWM (its peak). Not
    getrusage's ru_maxrss, which survives exec and so reports the parent's peak in a fresh child.
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def instrumented_executor(latency_seconds: float = EXECUTOR_LATENCY_SECONDS):
    """ModalBackend over the fake of its Modal requests, `latency_seconds` slower per call; every active call runs."""

    from exports.models import ExportJob
    from modal_jobs.modal_backend import ModalBackend
    from testing_support.fake_modal import FakeModal
    from testing_support.faults import FaultInjectingBackend

    fake = FakeModal()
    for call_id in ExportJob.objects.active().exclude(call_id="").values_list("call_id", flat=True):
        fake.running(call_id)
    backend = FaultInjectingBackend(ModalBackend(requests=fake))
    backend.fault, backend.delay_seconds = "slow", latency_seconds
    return backend


class BenchServer:
    """One daphne process (bench/serve.py) on loopback, sharing this process's data folder."""

    def __init__(self, name: str, **environment: str):
        self.name = name
        self.port = free_port()
        self.counts_file = Path(os.environ["DATA_DIR"]) / f"{name}-counts.json"
        self.environment = {**os.environ, "BENCH_COUNTS_FILE": str(self.counts_file), **environment}
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def websocket_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/exports/"

    def __enter__(self) -> BenchServer:
        log = open(Path(os.environ["DATA_DIR"]) / f"{self.name}.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.serve", str(self.port)],
            cwd=ROOT,
            env=self.environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        # serve.py starts writing its counts file before daphne listens, so listening is enough.
        what = f"The {self.name} server (see var/bench/{self.name}.log)"
        wait_until_listening(self.process, self.port, timeout=60, what=what)
        return self

    def __exit__(self, *exc_info) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def counts(self) -> dict:
        """Executor polls and store reads so far (the server rewrites the file every 100 ms)."""
        time.sleep(0.25)
        return json.loads(self.counts_file.read_text())

    def resident_kib(self) -> int:
        return memory_kib("VmRSS", self.process.pid)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a value that was measured)."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


def make_users(count: int, prefix: str):
    from django.contrib.auth import get_user_model

    User = get_user_model()
    User.objects.bulk_create([User(username=f"{prefix}{n}", password="!") for n in range(count)])
    return list(User.objects.filter(username__startswith=prefix).order_by("pk"))


def make_active_jobs(owners_and_projects: list, *, kind: str = "overlay") -> list:
    """Processing jobs with Modal-style call ids, created as the API would leave them."""
    from django.utils import timezone

    from exports.models import ExportJob, ExportStatus

    now = timezone.now()
    jobs = [
        ExportJob(
            owner=owner,
            project=project,
            kind=kind,
            params={},
            backend="modal",
            status=ExportStatus.PROCESSING,
            call_id=f"fc-bench{n:020d}",
            started_at=now,
        )
        for n, (owner, project) in enumerate(owners_and_projects)
    ]
    return ExportJob.objects.bulk_create(jobs, batch_size=2000)


def make_projects(owners: list, per_owner: int = 1) -> list:
    from projects.models import Project

    projects = [Project(owner=owner, name=f"Bench {owner.username} {n}") for owner in owners for n in range(per_owner)]
    Project.objects.bulk_create(projects, batch_size=2000)
    return list(Project.objects.filter(owner__in=owners).order_by("pk"))


def insert_finished_jobs(owner, project, count: int, *, days_ago: float = 3) -> None:
    """Insert `count` finished jobs in one statement (copies of one real row: the ORM would take minutes)."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from exports.models import ExportJob, ExportStatus

    long_ago = timezone.now() - timedelta(days=days_ago)
    template = ExportJob.objects.create(
        owner=owner, project=project, kind="overlay", params={}, backend="modal", status=ExportStatus.COMPLETE,
        progress=100, finished_at=long_ago, call_id="fc-finished",
    )  # fmt: skip
    ExportJob.objects.filter(pk=template.pk).update(created_at=long_ago, updated_at=long_ago)
    table = ExportJob._meta.db_table
    columns = [field.column for field in ExportJob._meta.concrete_fields if field.column != "id"]
    column_list = ", ".join(connection.ops.quote_name(column) for column in columns)
    copied = ", ".join(f"template.{connection.ops.quote_name(column)}" for column in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} (id, {column_list}) SELECT gen_random_uuid(), {copied} "
                f"FROM generate_series(1, %s), {table} AS template WHERE template.id = %s",
                [count - 1, template.pk],
            )
        else:
            cursor.execute(
                f"INSERT INTO {table} (id, {column_list}) "
                f"WITH RECURSIVE series(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM series WHERE n < %s) "
                f"SELECT lower(hex(randomblob(16))), {copied} FROM series, {table} AS template WHERE template.id = %s",
                [count - 1, template.pk.hex],
            )
            cursor.execute("ANALYZE")


def retire(jobs) -> None:
    """End a figure's jobs so the next figure starts with none active."""
    from django.utils import timezone

    from exports.models import ExportJob, ExportStatus

    ExportJob.objects.filter(pk__in=[job.pk for job in jobs]).update(
        status=ExportStatus.CANCELLED, finished_at=timezone.now()
    )

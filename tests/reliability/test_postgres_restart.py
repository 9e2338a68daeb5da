"""
PostgreSQL restarted mid-export: requests fail cleanly while it is down, connections recover after, nothing is lost.

A throwaway cluster made with the machine's PostgreSQL binaries (run as the postgres user, which they require)
on its own port; the shared server is never touched.
"""

import glob
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error

import pytest

from testing_support.loopback import free_port

from ..processes import wait_for
from ..servers import AppServer, Browser

BINARIES = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


class ThrowawayPostgres:
    def __init__(self):
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="throwaway-postgres-")
        self.data = os.path.join(self.root, "data")
        shutil.chown(self.root, "postgres", "postgres")
        self.bin = BINARIES[-1]

    def run(self, *arguments):
        subprocess.run(["runuser", "-u", "postgres", "--", *arguments], check=True, capture_output=True, timeout=120)

    def create(self):
        self.run(f"{self.bin}/initdb", "-D", self.data, "--auth=trust", "--username=postgres")
        self.start()

    def start(self):
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self.run(f"{self.bin}/pg_ctl", "-D", self.data, "-o", options, "-w", "start", "-l", f"{self.root}/log")

    def stop(self):
        self.run(f"{self.bin}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def destroy(self):
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def postgres_and_server(tmp_path):
    if not BINARIES or shutil.which("runuser") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PostgreSQL's binaries are missing")
        pytest.skip("PostgreSQL's binaries are not installed")
    database = ThrowawayPostgres()
    database.create()
    server = AppServer(
        tmp_path,
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{database.port}/postgres",
        EXPORTS_X264_PRESET="veryslow",
    )
    server.prepare_demo(clip_seconds=4, width=640, height=360)
    server.start()
    yield database, server
    server.stop()
    database.destroy()


def test_requests_fail_cleanly_while_postgres_is_down_and_everything_recovers(postgres_and_server):
    database, server = postgres_and_server
    browser = Browser(server.url)
    browser.sign_in("demo", "demo")
    project, _, job = browser.start_demo_export()
    job_id = job["id"]

    database.stop()
    started = time.monotonic()
    with pytest.raises(urllib.error.HTTPError) as failure:
        browser.get_json(f"/api/exports/{job_id}/")
    assert failure.value.code == 500  # a clean error (DEBUG's page here; JSON with DEBUG off), not a hang
    assert time.monotonic() - started < 5
    calls = server.data_dir / "executor" / "calls"
    wait_for(
        lambda: any(calls.glob("*/exit.json")), timeout=180, what="the export to finish while the database is down"
    )
    database.start()

    finished = wait_for(
        lambda: (job := browser.get_json(f"/api/exports/{job_id}/")["job"])["status"] != "processing" and job,
        timeout=60,
        step=1,
        what="the job to be reconciled after the restart",
    )
    assert finished["status"] == "complete"
    videos = browser.get_json(f"/api/projects/{project['id']}/")["project"]["working_videos"]
    assert [video["export_job_id"] for video in videos] == [job_id]

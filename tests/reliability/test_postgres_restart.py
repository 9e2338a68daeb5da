"""
PostgreSQL restarted mid-export: requests fail cleanly while it is down, connections recover after, nothing is lost.

A throwaway cluster (tests/servers.py) on its own port; the shared server is never touched.
"""

import time
import urllib.error

import pytest

from ..processes import wait_for
from ..servers import AppServer, Browser


@pytest.fixture
def postgres_and_server(throwaway_postgres, tmp_path):
    database = throwaway_postgres
    server = AppServer(
        tmp_path,
        DATABASE_URL=database.url,
        EXPORTS_X264_PRESET="veryslow",
    )
    server.prepare_demo(clip_seconds=4, width=640, height=360)
    server.start()
    yield database, server
    server.stop()


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

"""
The promise of the product, end to end: the web server dies mid-export (SIGKILL of
its whole process group), the export finishes anyway, and the next look after a
restart with the README's own command, by the same signed-in client, shows it
complete with exactly one playable working video.
"""

import json
import os
import signal
import time
from pathlib import Path

import psycopg
import pytest

from exports import services
from exports.models import ExportStatus
from exports.storage import object_store
from modal_jobs.local_backend import lock_is_held
from modal_jobs.media import probe

from ..helpers import reconcile_until_finished, start
from ..processes import kill_all_workers, wait_for
from ..servers import AppServer, Browser


@pytest.fixture
def server(tmp_path):
    # x264's slowest preset keeps the export running for a while after the server dies.
    server = AppServer(tmp_path, EXPORTS_X264_PRESET="veryslow")
    server.prepare_demo(clip_seconds=4, width=640, height=360)
    server.start()
    yield server
    server.stop()


def test_an_export_survives_the_web_server_being_killed_and_is_finalized_after_restart(server):
    browser = Browser(server.url)
    browser.sign_in("demo", "demo")
    project, clips, job = browser.start_demo_export()
    assert job["status"] == "processing"

    server.kill()
    calls = Path(server.data_dir) / "executor" / "calls"
    [call_dir] = list(calls.iterdir())
    assert not (call_dir / "return.json").exists(), "the export should still be running when the server dies"
    wait_for(lambda: (call_dir / "exit.json").exists(), timeout=180, what="the export to finish on its own")

    server.start_as_readme()  # make run, as the README restarts it: migrate and seed_demo included
    finished = wait_for(
        lambda: (
            (current := browser.get_json(f"/api/exports/{job['id']}/")["job"])["status"] != "processing" and current
        ),
        timeout=30,
        what="the job to be reconciled",
    )
    assert finished["status"] == "complete", finished
    assert finished["working_video"] is not None
    videos = browser.get_json(f"/api/projects/{project['id']}/")["project"]["working_videos"]
    assert [video["export_job_id"] for video in videos] == [job["id"]]
    output = Path(server.data_dir) / "media" / "exports" / job["id"] / "output.mp4"
    assert probe(output).duration == pytest.approx(sum(clip["duration"] for clip in clips), abs=0.2)
    with browser.open(finished["working_video"]["url"], Range="bytes=0-99") as response:
        assert response.status == 206
    assert json.loads((call_dir / "return.json").read_text())["status"] == "success"


def test_the_web_server_killed_while_taking_the_final_event_is_finalized_by_the_next_look_and_tells_once(
    throwaway_postgres, tmp_path
):
    """
    The worker's result event is inside the backend, in the transaction that creates the working video, when
    the backend dies: nothing of it is committed, the worker gives up (the store holds the result), and after
    a restart with `make run` the next look finalizes the job and e-mails its owner (no page open) once.
    """
    server = AppServer(tmp_path, DATABASE_URL=throwaway_postgres.url, EXPORTS_X264_PRESET="veryslow")
    server.environment["EXPORTS_EVENTS_URL"] = server.url  # as make run sets it from PORT
    server.prepare_demo(clip_seconds=2, width=320, height=180)
    server.start()
    database = psycopg.connect(throwaway_postgres.url, autocommit=True)
    try:
        browser = Browser(server.url)
        browser.sign_in("demo", "demo")
        _, _, job = browser.start_demo_export()
        # Inserts into the working videos wait for this lock; the worker's progress events never touch them.
        with database.transaction():
            database.execute("LOCK TABLE exports_workingvideo IN SHARE MODE")
            wait_for(lambda: waiting_on(database, "exports_workingvideo"), timeout=120, what="the final event")
            server.kill()
        [call_dir] = list((tmp_path / "executor" / "calls").iterdir())
        worker_log = call_dir / "worker.log"
        wait_for(lambda: "was not taken" in worker_log.read_text(), timeout=30, what="the worker to give up")
        assert "Remote end closed connection" in worker_log.read_text()  # the kill cut its first try short
        assert query(database, "SELECT status FROM exports_exportjob") == [("processing",)]

        server.start_as_readme()
        assert browser.get_json(f"/api/exports/{job['id']}/")["job"]["status"] == "complete"
        server.manage("reconcile_exports")

        completed = "SELECT trigger FROM exports_exportjobevent WHERE kind = 'completed'"
        assert query(database, completed) == [("view",)]
        assert query(database, "SELECT COUNT(*) FROM exports_workingvideo") == [(1,)]
        assert len(list((tmp_path / "mail").iterdir())) == 1
    finally:
        database.close()
        server.stop()
        kill_all_workers(tmp_path / "executor")


def waiting_on(database, table: str) -> bool:
    """Whether some session waits for a lock on `table`."""
    sql = "SELECT 1 FROM pg_locks JOIN pg_class ON pg_class.oid = pg_locks.relation WHERE relname = %s AND NOT granted"
    return bool(query(database, sql, [table]))


def query(database, sql: str, parameters=()) -> list[tuple]:
    return database.execute(sql, parameters).fetchall()


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_chunked_export_whose_worker_died_stops_the_chunks_it_left_running(
    executor, project, long_clip, settings
):
    """The export's worker SIGKILLed (it cancels nothing), its chunk calls rendering on: the cancel still stops them."""
    settings.EXPORTS_CHUNK_SECONDS = 2
    job = start(project, long_clip, end=10)
    backend = executor.inner
    chunk_calls = lambda: [  # noqa: E731
        path.parent.name for path in backend.root.glob("calls/*/call.json") if '"kind": "chunk"' in path.read_text()
    ]
    wait_for(lambda: any((backend.call_dir(call) / "started.json").exists() for call in chunk_calls()), timeout=60,
             what="a chunk rendering")  # fmt: skip
    export_worker = json.loads((backend.call_dir(job.call_id) / "started.json").read_text())["worker_pgid"]
    os.killpg(export_worker, signal.SIGKILL)

    services.cancel_export(job)
    cancelled_at = time.monotonic()
    wait_for(lambda: not any(lock_is_held(backend.call_dir(call) / "lock") for call in chunk_calls()), timeout=20,
             what="the chunks to stop")  # fmt: skip

    assert time.monotonic() - cancelled_at < 3


@pytest.mark.django_db(transaction=True)
def test_a_retry_of_a_chunked_export_killed_midway_renders_only_the_chunks_it_had_not_kept(
    executor, project, long_clip, settings, eager_checks
):
    settings.EXPORTS_CHUNK_SECONDS = 2
    job = start(project, long_clip, end=10)
    store = object_store()
    kept = lambda: [key for key in store.list_keys(f"exports/{job.pk}/chunks/") if key.endswith(".mp4")]  # noqa: E731
    wait_for(lambda: len(kept()) >= 2, timeout=120, what="two chunks kept")
    kill_all_workers(settings.LOCAL_EXECUTOR_DIR)  # the machine dies: the export's worker and its chunks'
    assert reconcile_until_finished(job).status == ExportStatus.ERROR
    kept_before = len(kept())

    retry = reconcile_until_finished(services.retry_export(job), timeout=180)

    assert retry.status == ExportStatus.COMPLETE
    chunk_jobs = [
        json.loads(path.read_text())["payload"]["export"]["job_id"]
        for path in executor.inner.root.glob("calls/*/call.json")
        if '"kind": "chunk"' in path.read_text()
    ]
    assert chunk_jobs.count(str(retry.pk)) == 5 - kept_before

"""
The promise of the product, end to end: the web server dies mid-export (SIGKILL of
its whole process group), the export finishes anyway, and the next look after a
restart with the README's own command, by the same signed-in client, shows it
complete with exactly one playable working video.
"""

import json
from pathlib import Path

import pytest

from modal_jobs.media import probe

from ..processes import wait_for
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

"""
Redis down: pages and the polling fallback keep working, and sockets come back when Redis does.

Runs a throwaway redis-server on its own port (the shared one is never touched) under a live daphne.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest
from websockets.sync.client import connect

from testing_support.loopback import free_port

from ..processes import wait_for
from ..servers import AppServer, Browser

REDIS_SERVER = shutil.which("redis-server")


class ThrowawayRedis:
    def __init__(self):
        self.port = free_port()
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: subprocess.run([REDIS_SERVER.replace("-server", "-cli"), "-p", str(self.port), "ping"],
                                        capture_output=True, text=True).stdout.strip() == "PONG",
                 timeout=10, what="redis to start")  # fmt: skip

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def redis_and_server(tmp_path):
    if REDIS_SERVER is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("redis-server is missing")
        pytest.skip("redis-server is not installed")
    redis = ThrowawayRedis()
    redis.start()
    server = AppServer(tmp_path, REDIS_URL=f"redis://127.0.0.1:{redis.port}/0", EXPORTS_X264_PRESET="veryslow")
    server.prepare_demo(clip_seconds=4, width=640, height=360)
    server.start()
    yield redis, server
    server.stop()
    if redis.process.poll() is None:
        redis.stop()


def socket_snapshot(server, cookie):
    with connect(
        f"ws://127.0.0.1:{server.port}/ws/exports/",
        additional_headers={"Cookie": cookie, "Origin": server.url},
        open_timeout=5,
    ) as socket:
        return json.loads(socket.recv(timeout=5))


def test_pages_and_polling_work_without_redis_and_sockets_return_with_it(redis_and_server):
    redis, server = redis_and_server
    browser = Browser(server.url)
    browser.sign_in("demo", "demo")
    cookie = "; ".join(f"{cookie.name}={cookie.value}" for cookie in browser.cookies)
    assert socket_snapshot(server, cookie)["type"] == "snapshot"
    project, _, job = browser.start_demo_export()
    job_id = job["id"]

    redis.stop()

    assert browser.open("/projects/").status == 200
    assert browser.open(f"/projects/{project['id']}/").status == 200
    with pytest.raises(Exception):  # noqa: B017  (the socket cannot join its group: refused or closed at once)
        socket_snapshot(server, cookie)
    started = time.monotonic()
    finished = wait_for(
        lambda: (job := browser.get_json(f"/api/exports/{job_id}/")["job"])["status"] != "processing" and job,
        timeout=120,
        step=1,
        what="the export to finish through polling",
    )
    assert finished["status"] == "complete", finished
    assert time.monotonic() - started < 120

    other = Browser(server.url)
    other.sign_in("demo", "demo")
    token = next(cookie.value for cookie in other.cookies if cookie.name == "csrftoken")
    signed_out = other.opener.open(
        urllib.request.Request(
            f"{server.url}/accounts/logout/",
            data=f"csrfmiddlewaretoken={token}".encode(),
            headers={"Referer": f"{server.url}/"},
        ),
        timeout=10,
    )
    assert signed_out.url == f"{server.url}/accounts/login/"  # signing out works with the channel layer down

    redis.start()  # the same port, as a restarted Redis would be
    snapshot = wait_for(lambda: _try_snapshot(server, cookie), timeout=30, what="sockets to come back")
    assert [job["id"] for job in snapshot["jobs"]] == [job_id]


def _try_snapshot(server, cookie):
    try:
        return socket_snapshot(server, cookie)
    except Exception:
        return None

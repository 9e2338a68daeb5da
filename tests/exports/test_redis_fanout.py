"""Two daphne processes sharing the real Redis channel layer: a change made through one reaches the other."""

import json
import os
import uuid

import pytest
from websockets.sync.client import connect

from ..servers import AppServer, Browser

pytestmark = pytest.mark.redis


@pytest.fixture
def two_servers(tmp_path):
    shared = {"REDIS_URL": os.environ["REDIS_URL"], "CHANNELS_PREFIX": f"fanout-{uuid.uuid4().hex[:8]}"}
    first, second = AppServer(tmp_path, **shared), AppServer(tmp_path, **shared)
    first.prepare_demo()
    first.start()
    second.start()
    yield first, second
    first.stop()
    second.stop()


def test_a_change_through_one_process_reaches_a_socket_on_the_other(two_servers):
    first, second = two_servers
    browser = Browser(first.url)
    browser.sign_in("demo", "demo")
    cookie = "; ".join(f"{cookie.name}={cookie.value}" for cookie in browser.cookies)
    project = browser.get_json("/api/projects/")["projects"][0]
    clip = browser.get_json(f"/api/projects/{project['id']}/")["project"]["clips"][0]

    with connect(
        f"ws://127.0.0.1:{second.port}/ws/exports/", additional_headers={"Cookie": cookie, "Origin": second.url}
    ) as socket:
        assert json.loads(socket.recv(timeout=10))["type"] == "snapshot"
        body = {
            "kind": "overlay",
            "params": {
                "clip_id": clip["id"],
                "highlights": [{"start": 0, "end": 0.5, "x": 0.5, "y": 0.5, "radius": 0.2}],
            },
        }
        status, started = browser.post_json(f"/api/projects/{project['id']}/exports/", body)
        assert status == 201
        while True:
            message = json.loads(socket.recv(timeout=20))
            if message["type"] == "job" and message["job"]["id"] == started["job"]["id"]:
                break
    assert message["job"]["kind"] == "overlay"

"""GET /healthz reports each part the service needs, and turns 503 when one fails."""

import pytest

pytestmark = pytest.mark.django_db


def test_all_parts_answer(client, executor):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "channel_layer": True,
        "storage": True,
        "executor": True,
    }


def test_a_failing_store_is_503_with_the_reason(client, executor, settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the media folder should be")
    settings.MEDIA_ROOT = blocker
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert body["checks"]["storage"]["ok"] is False
    assert "Error" in body["checks"]["storage"]["error"]
    assert body["checks"]["database"]["ok"] is True


def test_a_failing_executor_is_503_with_the_reason(client, executor):
    executor.fault = "down"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["executor"] == {
        "ok": False,
        "error": "ExecutorUnavailable: injected: the executor is down",
        "seconds": response.json()["checks"]["executor"]["seconds"],
    }

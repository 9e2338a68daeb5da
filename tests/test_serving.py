"""
The embedded default end to end, as `make run` starts it: migrate, seed the demo,
serve with daphne, sign in as demo/demo and play the demo clips.
"""

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"daphne exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"daphne did not listen on {port} within {timeout} s")


@pytest.fixture
def served_demo(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(DATA_DIR=str(tmp_path), DEBUG="true")
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=120)
    subprocess.run(
        [*manage, "seed_demo", "--clip-seconds", "1", "--width", "320", "--height", "180"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
    )
    port = free_port()
    daphne = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "exports_project.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, daphne)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(daphne.pid, signal.SIGTERM)
        daphne.wait(timeout=10)


def test_demo_signs_in_and_plays_the_three_demo_clips(served_demo):
    cookies = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))

    login_page = browser.open(f"{served_demo}/accounts/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page).group(1)
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": "demo", "password": "demo"})
    request = urllib.request.Request(
        f"{served_demo}/accounts/login/", data=form.encode(), headers={"Referer": f"{served_demo}/accounts/login/"}
    )
    projects_page = browser.open(request, timeout=10)
    assert projects_page.url == f"{served_demo}/projects/"
    html = projects_page.read().decode()
    project_path = re.search(r'<a href="(/projects/\d+/)">Demo project</a>', html).group(1)

    project_page = browser.open(served_demo + project_path, timeout=10).read().decode()
    sources = re.findall(r'<video controls preload="metadata" src="([^"]+)"', project_page)
    assert len(sources) == 3
    for source in sources:
        ranged = urllib.request.Request(served_demo + source, headers={"Range": "bytes=0-1023"})
        with browser.open(ranged, timeout=10) as response:
            assert response.status == 206
            body = response.read()
        assert len(body) == 1024
        assert body[4:8] == b"ftyp"  # an MP4 starts with its ftyp box

    stylesheet = browser.open(f"{served_demo}/static/css/app.css", timeout=10)
    assert stylesheet.status == 200

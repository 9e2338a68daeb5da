"""
The embedded default end to end, as `make run` starts it: migrate, seed the demo,
serve with daphne, sign in as demo/demo and play the demo clips.
"""

import re

import pytest

from .servers import AppServer, Browser


@pytest.fixture
def served_demo(tmp_path):
    server = AppServer(tmp_path)
    server.prepare_demo()
    server.start()
    yield server
    server.stop()


def test_demo_signs_in_and_plays_the_three_demo_clips(served_demo):
    browser = Browser(served_demo.url)
    projects_page = browser.sign_in("demo", "demo")
    assert projects_page.url == f"{served_demo.url}/projects/"
    html = projects_page.read().decode()
    project_path = re.search(r'<a href="(/projects/\d+/)">Demo project</a>', html).group(1)

    project_page = browser.open(project_path).read().decode()
    sources = re.findall(r'<video controls preload="metadata" src="([^"]+)"', project_page)
    assert len(sources) == 3
    for source in sources:
        with browser.open(source, Range="bytes=0-1023") as response:
            assert response.status == 206
            body = response.read()
        assert len(body) == 1024
        assert body[4:8] == b"ftyp"  # an MP4 starts with its ftyp box

    assert browser.open("/static/css/app.css").status == 200

"""
Browser tests: Debian's Chromium driven by Playwright against a live daphne started per test.

Exports here take about half a minute (x264's slowest preset on 45 s of 960x540 demo clips), long
enough to act mid-way. Each test saves a screenshot under test-artifacts/browser/.
"""

import contextlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from ..servers import ROOT, AppServer

ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGUMENTS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium is missing: make test installs Debian's chromium package.")
        pytest.skip("Chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGUMENTS)
        yield browser
        browser.close()


@contextlib.contextmanager
def demo_server(data_dir, **environment):
    """A daphne on the demo (15 s clips at 960x540), x264's slowest preset so exports last about half a minute."""
    from ..processes import kill_all_workers

    server = AppServer(data_dir, EXPORTS_X264_PRESET="veryslow", EXPORTS_SOCKET_TICK_SECONDS="0.5", **environment)
    server.prepare_demo(clip_seconds=15, width=960, height=540)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        kill_all_workers(data_dir / "executor")


@pytest.fixture
def server(tmp_path):
    with demo_server(tmp_path) as server:
        yield server


class BrowserSession:
    """One browser context (a person with cookies) and its pages, collecting console errors."""

    def __init__(self, chromium, server, *, width=1366, height=900):
        self.server = server
        self.context = chromium.new_context(viewport={"width": width, "height": height})
        self.errors: list[str] = []
        self.page = self.new_page()

    def new_page(self):
        page = self.context.new_page()
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        return page

    def sign_in(self, page=None, username="demo", password="demo"):
        page = page or self.page
        page.goto(f"{self.server.url}/accounts/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.server.url}/projects/")

    def open_demo_project(self, page=None):
        page = page or self.page
        page.goto(f"{self.server.url}/projects/")
        page.click("text=Demo project")
        page.wait_for_selector("#export-forms")
        # The forms are parsed before their deferred scripts run: a click before then submits them natively.
        page.wait_for_load_state("domcontentloaded")

    def own_errors(self) -> list[str]:
        """Console errors of the page itself; failed connections the browser logs while a server is away are not."""
        return [error for error in self.errors if "net::ERR_" not in error and "WebSocket" not in error]

    def close(self):
        self.context.close()


@pytest.fixture
def person(chromium, server, request):
    session = BrowserSession(chromium, server)
    yield session
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for number, page in enumerate(session.context.pages):
        if not page.is_closed():
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{number}.png"), full_page=True)
    session.close()


def bar_state(page):
    """[(job id, status, percent)] of the tray's bars, as the page shows them."""
    return page.eval_on_selector_all(
        ".export-bar", "bars => bars.map(bar => [bar.dataset.jobId, bar.dataset.status, Number(bar.dataset.progress)])"
    )


def logged_percents(server, job_id) -> set[int]:
    """Every percent the worker wrote, as the backend may show it (a worker's 100 shows as 99 until finalized)."""
    log = Path(server.data_dir) / "media" / "exports" / job_id / "progress.log"
    return {min(99, json.loads(line)["percent"]) for line in log.read_text().splitlines()}


def working_videos_for(server, job_id) -> int:
    with sqlite3.connect(Path(server.data_dir) / "db.sqlite3") as database:
        return database.execute(
            "SELECT COUNT(*) FROM exports_workingvideo WHERE export_job_id = ?", [job_id.replace("-", "")]
        ).fetchone()[0]

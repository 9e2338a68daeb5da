"""What users see never loses an export: navigation, closing the browser, a server crash, a blocked socket, sign-out."""

import time

from ..processes import wait_for
from .conftest import ARTIFACTS, BrowserSession, bar_state, logged_percents, working_videos_for

EXPORT_SECONDS = 180  # generous: an export takes about half a minute here


def start_export(page) -> str:
    page.click("form[data-kind=multi_clip] button[type=submit]")
    page.wait_for_selector(".export-bar", state="attached")  # a phone's tray starts collapsed
    [(job_id, _, _)] = bar_state(page)
    return job_id


def percent_of(page, job_id):
    for bar_id, status, percent in bar_state(page):
        if bar_id == job_id:
            return status, percent
    return None


def watch(page, job_id, *, until, timeout=EXPORT_SECONDS):
    """Sample the bar a few times a second until `until(status, percent)`; return the samples."""
    samples = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = percent_of(page, job_id)
        if state:
            samples.append(state)
            if until(*state):
                return samples
        page.wait_for_timeout(250)
    raise AssertionError(f"the bar never got there: {samples[-5:]}")


def test_the_bar_shows_the_workers_real_percentages_as_they_come(person, server):
    person.sign_in()
    person.open_demo_project()
    job_id = start_export(person.page)

    samples = watch(person.page, job_id, until=lambda status, percent: status == "processing" and percent >= 25)
    percents = [percent for _, percent in samples]
    assert percents == sorted(percents)
    shown = set(percents)
    assert len(shown) >= 3
    assert shown <= logged_percents(server, job_id)
    assert person.errors == []


def test_navigating_mid_export_keeps_the_bar_without_going_back(person, server):
    person.sign_in()
    person.open_demo_project()
    job_id = start_export(person.page)
    watch(person.page, job_id, until=lambda status, percent: percent >= 15)

    for link in ("Projects", "Exports"):
        _, before = percent_of(person.page, job_id)
        person.page.click(f".site-header >> text={link}")
        person.page.wait_for_load_state("domcontentloaded")
        status, after_navigation = percent_of(person.page, job_id)  # rendered by the server, before any script ran
        assert status == "processing" and after_navigation >= before
        watch(person.page, job_id, until=lambda status, percent, floor=after_navigation: percent > floor)
    assert person.errors == []


def test_closing_the_browser_and_coming_back_later_finds_the_export_complete(chromium, server, person):
    person.sign_in()
    person.open_demo_project()
    job_id = start_export(person.page)
    watch(person.page, job_id, until=lambda status, percent: percent >= 12)
    person.close()

    calls = server.data_dir / "executor" / "calls"
    wait_for(lambda: any(calls.glob("*/exit.json")), timeout=EXPORT_SECONDS, what="the export to finish alone")

    later = BrowserSession(chromium, server)
    try:
        later.sign_in()
        later.page.wait_for_selector(f'.export-bar[data-job-id="{job_id}"][data-status="complete"]', timeout=15000)
        link = later.page.get_attribute(f'.export-bar[data-job-id="{job_id}"] [data-role="video-link"]', "href")
        response = later.page.request.get(server.url + link, headers={"Range": "bytes=0-1023"})
        assert response.status == 206
        later.page.screenshot(path=str(server.data_dir / "came-back.png"))
        assert later.errors == []
    finally:
        later.close()
    assert working_videos_for(server, job_id) == 1


def test_the_page_recovers_by_itself_when_the_server_is_killed_mid_export(person, server):
    person.sign_in()
    person.open_demo_project()
    job_id = start_export(person.page)
    watch(person.page, job_id, until=lambda status, percent: percent >= 12)

    server.kill()
    person.page.wait_for_selector('[data-role="connection"]:has-text("reconnecting")', timeout=15000)
    time.sleep(2)
    server.start_as_readme()  # make run, as the README restarts it: migrate and seed_demo included

    watch(person.page, job_id, until=lambda status, percent: status == "complete")
    person.page.wait_for_selector('[data-role="connection"]:has-text("live")', timeout=40000)
    assert working_videos_for(server, job_id) == 1
    assert person.own_errors() == []


def test_with_the_socket_blocked_the_page_completes_by_polling(person, server):
    person.page.route_web_socket("**/ws/exports/**", lambda socket: socket.close())
    person.sign_in()
    person.open_demo_project()
    job_id = start_export(person.page)

    samples = watch(person.page, job_id, until=lambda status, percent: status == "complete")
    assert len({percent for _, percent in samples}) >= 3
    assert "live" not in person.page.inner_text('[data-role="connection"]')
    assert person.own_errors() == []


def test_signing_out_in_another_tab_shows_a_sign_in_prompt_not_a_reconnect_loop(person, server):
    person.sign_in()
    person.open_demo_project()
    person.page.wait_for_selector('[data-role="connection"]:has-text("live")')

    other_tab = person.new_page()
    other_tab.goto(f"{server.url}/projects/")
    other_tab.click(".site-header button:has-text('Sign out')")
    other_tab.wait_for_url(f"{server.url}/accounts/login/")

    person.page.wait_for_selector('[data-role="signin"]:not([hidden])', timeout=10000)
    sockets = []
    person.page.on("websocket", lambda socket: sockets.append(socket))
    person.page.wait_for_timeout(5000)
    assert sockets == []  # no reconnect attempts after 4401
    assert person.errors == []


def test_no_page_scrolls_sideways_and_the_tray_is_visible_on_phones_and_laptops(chromium, server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((375, 812), (1366, 900)):
        visitor = BrowserSession(chromium, server, width=width, height=height)
        try:
            visitor.sign_in()
            visitor.open_demo_project()
            if width == 375:
                start_export(visitor.page)  # a bar in the tray, so its layout is checked too
            for path in ("/projects/", visitor.page.url.removeprefix(server.url), "/exports/"):
                visitor.page.goto(server.url + path)
                assert visitor.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (width, path)
                assert visitor.page.is_visible("#export-tray")
                name = path.strip("/").replace("/", "-") or "home"
                visitor.page.screenshot(path=str(ARTIFACTS / f"layout-{width}-{name}.png"))
            assert visitor.errors == []
        finally:
            visitor.close()


def test_a_job_is_retried_once_and_after_a_reload_its_retry_button_is_gone(person, server):
    person.sign_in()
    person.open_demo_project()
    page = person.page
    job_id = start_export(page)
    page.click("form[data-kind=multi_clip] button[type=submit]")  # again, while it runs
    stale = page.locator('form[data-kind=multi_clip] [data-role="form-error"]')
    stale.wait_for(state="visible")
    assert "already running" in stale.inner_text()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.click(f'.export-bar[data-job-id="{job_id}"] [data-action="cancel"]')
    assert dialogs and "Cancel" in dialogs[0]  # asked first
    page.wait_for_selector(f'.export-bar[data-job-id="{job_id}"][data-status="cancelled"]', timeout=30000)
    stale.wait_for(state="hidden", timeout=5000)  # that export ended: "already running" is no longer true

    page.click(f'.export-bar[data-job-id="{job_id}"] [data-action="retry"]')
    page.wait_for_function("document.querySelectorAll('.export-bar').length === 2")
    retry_bar = page.locator(f'.export-bar:not([data-job-id="{job_id}"])')
    page.locator(f'.export-bar[data-job-id="{job_id}"] [data-action="retry"]').wait_for(state="detached", timeout=5000)

    page.reload()
    page.wait_for_selector(f'.export-bar[data-job-id="{job_id}"]')
    assert page.locator(f'.export-bar[data-job-id="{job_id}"] [data-action="retry"]').count() == 0
    assert retry_bar.count() == 1
    page.goto(f"{server.url}/exports/")
    assert page.locator('tr [data-action="retry"]').count() == 0
    assert [error for error in person.errors if "409 (Conflict)" not in error] == []  # the 409 was the point

"""
What a user meets around an export: a tray that never covers the page, a queue that says so, the finished
video appearing where they are, and being told when it ends wherever they look.
"""

from .conftest import ARTIFACTS, BrowserSession, bar_state, demo_server
from .test_tray import EXPORT_SECONDS, start_export, watch

# Every control of the project page's export forms, and whether the tray lies over its centre once it is in view.
COVERED_CONTROLS = """() => {
  const tray = document.getElementById("export-tray");
  const covered = [];
  for (const control of document.querySelectorAll("#export-forms input, #export-forms select, #export-forms button")) {
    control.scrollIntoView({ block: "center" });
    const box = control.getBoundingClientRect();
    const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    if (top && tray.contains(top)) covered.push(control.name || control.textContent.trim() || control.type);
  }
  for (const control of document.querySelectorAll("#export-forms input, #export-forms select, #export-forms button")) {
    control.scrollIntoView({ block: "end" });  // the last line of the viewport: where a docked tray would be
    const box = control.getBoundingClientRect();
    const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    if (top && tray.contains(top)) covered.push(control.name || control.textContent.trim() || control.type);
  }
  return covered;
}"""


# Headless Chromium keeps every tab visible: these stand in for the user switching tabs away and back.
HIDE_TAB = """() => {
  Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
  document.dispatchEvent(new Event("visibilitychange"));
}"""
SHOW_TAB = """() => {
  Object.defineProperty(document, "hidden", { configurable: true, get: () => false });
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "visible" });
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def summary(page) -> str:
    return page.inner_text('[data-role="summary"]')


def test_the_tray_never_covers_a_form_control_and_collapses_to_one_line_remembered_across_pages(chromium, server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    laptop = BrowserSession(chromium, server, width=1366, height=900)
    try:
        laptop.sign_in()
        laptop.open_demo_project()
        page = laptop.page
        start_export(page)
        page.click("form[data-kind=overlay] button[type=submit]")
        page.wait_for_function("document.querySelectorAll('.export-bar').length === 2")
        assert page.evaluate(COVERED_CONTROLS) == []
        page.screenshot(path=str(ARTIFACTS / "tray-1366-open.png"))

        page.click('[data-role="toggle"]')
        assert page.get_attribute('[data-role="toggle"]', "aria-expanded") == "false"
        page.goto(f"{server.url}/exports/")
        assert page.get_attribute("#export-tray", "data-state") == "collapsed"  # rendered so: no flash
        assert not page.is_visible(".export-bar")
        assert "2 running" in summary(page) and "%" in summary(page)
        page.screenshot(path=str(ARTIFACTS / "tray-1366-collapsed.png"))
        assert laptop.errors == []
    finally:
        laptop.close()

    phone = BrowserSession(chromium, server, width=375, height=812)
    try:
        phone.sign_in()
        phone.open_demo_project()
        page = phone.page
        tray_height = page.evaluate("document.getElementById('export-tray').getBoundingClientRect().height")
        assert tray_height < 90, tray_height  # collapsed by default on a phone: one line
        assert "running" in summary(page) and "%" in summary(page)  # the percent still shows
        assert page.evaluate(COVERED_CONTROLS) == []
        page.screenshot(path=str(ARTIFACTS / "tray-375-collapsed.png"))
        page.click('[data-role="toggle"]')
        page.wait_for_selector(".export-bar")
        page.screenshot(path=str(ARTIFACTS / "tray-375-open.png"))
        assert phone.errors == []
    finally:
        phone.close()


def test_exports_waiting_for_a_worker_say_queued_and_how_many_are_ahead(chromium, tmp_path):
    with demo_server(tmp_path, LOCAL_EXECUTOR_MAX_WORKERS="1") as server:
        person = BrowserSession(chromium, server)
        try:
            person.sign_in()
            person.open_demo_project()
            page = person.page
            for started, kind in enumerate(("multi_clip", "framing_ai", "overlay"), start=1):
                page.click(f"form[data-kind={kind}] button[type=submit]")
                page.wait_for_function(f"document.querySelectorAll('.export-bar').length === {started}")
            bars = page.locator(".export-bar")
            page.wait_for_function(  # each job's next executor check brings its place: within a few seconds
                "() => { const shown = Array.from(document.querySelectorAll('.bar-message')).map(m => m.textContent);"
                " return shown.includes('Queued: 1 export ahead') && shown.includes('Queued: next to start'); }",
                timeout=20000,
            )
            messages = [bars.nth(number).locator(".bar-message").inner_text() for number in range(3)]
            assert "Queued: next to start" in messages and "Queued: 1 export ahead" in messages, messages
            assert not any("Waiting" in message for message in messages)
            page.screenshot(path=str(ARTIFACTS / "tray-queued.png"))
            for job_id, _, _ in bar_state(page):
                person.context.request.post(
                    f"{server.url}/api/exports/{job_id}/cancel/",
                    headers={"X-CSRFToken": csrf_token(person), "Referer": server.url + "/"},
                )
            assert person.errors == []
        finally:
            person.close()


def csrf_token(person) -> str:
    return next(cookie["value"] for cookie in person.context.cookies() if cookie["name"] == "csrftoken")


def test_a_finished_export_appears_where_the_user_is_with_a_download(person, server):
    person.sign_in()
    person.open_demo_project()
    project_page = person.page
    other_page = person.new_page()  # the user has the history open in another tab
    other_page.goto(f"{server.url}/exports/")
    rows_before = other_page.locator("table.history tbody tr").count()
    job_id = start_export(project_page)
    assert project_page.locator("#working-videos .clip").count() == 0

    watch(other_page, job_id, until=lambda status, percent: status == "processing" and percent > 0)
    # The history table, loaded before the export started, shows it on top without a reload.
    row = other_page.locator("table.history tbody tr").first
    other_page.wait_for_function(
        f"() => document.querySelector('table.history tbody tr').dataset.jobId === '{job_id}'", timeout=10000
    )
    assert other_page.locator("table.history tbody tr").count() == rows_before + 1
    assert "%" in other_page.title().split("·")[0]  # the running percent in the tab's title
    other_page.evaluate(HIDE_TAB)  # the user looks at another tab

    notice = other_page.wait_for_selector(f'.export-notice[data-job-id="{job_id}"]', timeout=EXPORT_SECONDS * 1000)
    assert "is ready" in notice.inner_text()
    assert other_page.title().startswith("✓ Done")  # what a hidden tab shows of an export that ended
    other_page.evaluate(SHOW_TAB)
    assert not other_page.title().startswith("✓")
    download = notice.query_selector("a").get_attribute("href")
    response = other_page.request.get(server.url + download, headers={"Range": "bytes=0-99"})
    assert response.status == 206 and "attachment" in response.headers["content-disposition"]
    tray_download = other_page.get_attribute(f'.export-bar[data-job-id="{job_id}"] [data-role="download"]', "href")
    assert tray_download == download
    row.locator('td[data-label="Status"].status-complete').wait_for(timeout=10000)  # and its row follows it
    assert row.get_by_role("link", name="Download").get_attribute("href") == download

    # The project page, open all along, shows the new working video without a reload, and it plays.
    video = project_page.wait_for_selector(f'#working-videos .clip[data-job-id="{job_id}"] video', timeout=15000)
    project_page.wait_for_function("video => video.readyState >= 1 && video.duration > 1", arg=video, timeout=15000)
    assert project_page.evaluate("Notification.permission") == "default"  # never asked without opting in
    assert project_page.is_visible('[data-role="notify"]')
    assert person.errors == []

"""Uploading a clip as a user does: the limit said before a file is chosen, progress while it goes, errors in place."""

from modal_jobs.media import generate_test_clip

# Every text the upload's progress line shows, reported to the test as it changes (it survives the navigation
# that follows a successful upload, which a list kept in the page would not).
FOLLOW_PROGRESS = """() => {
  const line = document.querySelector('[data-role="upload-percent"]');
  new MutationObserver(() => window.noteUploadText(line.textContent)).observe(line, { childList: true });
}"""


def test_an_upload_says_its_limit_first_shows_its_progress_and_lands_in_the_project(person, server, tmp_path):
    """Before: no test watched the upload in a browser; the limit and progress were only template text."""
    clip = tmp_path / "corner-kick.mp4"
    generate_test_clip(clip, pattern="testsrc2", seconds=4, width=960, height=540)
    person.sign_in()
    person.open_demo_project()
    page = person.page
    clips_before = page.locator('.clip-grid .clip[id^="clip-"]').count()
    assert "Up to " in page.inner_text("#clip-upload")  # the limit, before any file is chosen

    texts = []
    page.expose_function("noteUploadText", lambda text: texts.append(text))
    page.evaluate(FOLLOW_PROGRESS)
    network = person.context.new_cdp_session(page)
    network.send("Network.enable")  # slow enough to be seen: the file takes about three seconds to send
    rate = clip.stat().st_size / 3
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": rate},
    )
    page.set_input_files("#id_file", str(clip))
    with page.expect_navigation(timeout=60000):
        page.click("#clip-upload [type=submit]")
    page.wait_for_selector("#export-forms")

    percents = [int(text.split()[1]) for text in texts if text.startswith("Uploading")]
    assert percents[0] == 0 and any(0 < percent < 100 for percent in percents), texts
    assert percents == sorted(percents)
    assert texts[-1] == "Checking the video…"
    assert page.locator('.clip-grid .clip[id^="clip-"]').count() == clips_before + 1
    assert "corner-kick" in page.inner_text(".clip-grid")
    assert person.own_errors() == []


def test_a_refused_upload_says_why_under_the_form_and_its_address_leads_back_to_the_project(person, server, tmp_path):
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("shopping list: oranges, tape\n" * 100)
    person.sign_in()
    person.open_demo_project()
    page = person.page
    project_url = page.url

    page.set_input_files("#id_file", str(not_a_video))
    page.click("#clip-upload [type=submit]")
    error = page.wait_for_selector('[data-role="upload-error"]:not([hidden])', timeout=30000)

    assert "notes.mp4" in error.inner_text()
    assert page.url == project_url  # the page stayed, with the form
    assert page.is_enabled("#clip-upload [type=submit]")
    page.goto(server.url + page.get_attribute("#clip-upload", "action"))  # the upload's address, typed
    assert page.url == project_url

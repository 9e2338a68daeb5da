"""The export forms as a user fills them in: every error of a form at once, each where it belongs."""


def test_every_error_of_a_highlight_shows_at_once_under_it_and_nothing_starts(person):
    """Before: the x's error alone showed; corrected and sent again, the end was refused next."""
    person.sign_in()
    person.open_demo_project()
    page = person.page
    form = page.locator('form[data-kind="overlay"]')
    form.locator('input[name="x"]').first.fill("1.5")
    form.locator('input[name="end"]').first.fill("99")
    form.locator('[type="submit"]').click()

    error = form.locator(".highlight-row .field-error").first
    error.wait_for(state="visible", timeout=10000)
    page.wait_for_function("element => element.textContent.includes('\\n')", arg=error.element_handle())
    assert error.inner_text().splitlines() == [
        "highlight 1: x (horizontal position) must be between 0 and 1",
        "highlight 1: end 99.0 s is past its 15.0 s duration",
    ]
    assert page.locator(".export-bar").count() == 0
    # The browser logs the 400 itself; nothing else may fail on the page.
    assert [error for error in person.own_errors() if "status of 400" not in error] == []

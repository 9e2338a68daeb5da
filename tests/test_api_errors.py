"""Every error under /api/ is JSON, with DEBUG on (the embedded default) as with DEBUG off."""

import uuid

import pytest
from django.test import Client

from .conftest import logged_in_client


@pytest.fixture(params=[True, False], ids=["debug", "production"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


@pytest.mark.django_db
def test_an_unknown_job_or_url_is_a_json_404(debug, owner):
    client = logged_in_client(owner)

    for url in (f"/api/exports/{uuid.uuid4()}/", "/api/no-such-thing/", "/api/projects/999999/"):
        response = client.get(url)
        assert (response.status_code, response["Content-Type"], response.json()) == (
            404,
            "application/json",
            {"error": "Not found."},
        ), url


@pytest.mark.django_db
def test_a_body_over_the_limit_is_a_json_400_without_settings(debug, owner, project):
    """Before: with DEBUG on, a 3 MB body answered the HTML debug page and its dump of the settings."""
    client = Client(enforce_csrf_checks=False, raise_request_exception=False)
    client.force_login(owner)

    response = client.post(
        f"/api/projects/{project.pk}/exports/", b"{" + b" " * 3_000_000 + b"}", content_type="application/json"
    )

    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert response.json() == {"error": "Bad request."}
    assert b"SECRET_KEY" not in response.content


@pytest.mark.django_db
def test_pages_outside_the_api_keep_djangos_html_errors(debug, owner):
    response = logged_in_client(owner).get("/projects/999999/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")

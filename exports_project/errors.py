"""
Error views: JSON under /api/, Django's usual HTML pages everywhere else.

API clients (the tray's script, operators' curl) must never have to parse an
HTML error page, including for CSRF failures and unknown URLs.
"""

from django.http import JsonResponse
from django.views import defaults
from django.views.csrf import csrf_failure as html_csrf_failure


def is_api_request(request) -> bool:
    return request.path.startswith("/api/")


def json_error(message: str, *, status: int, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def bad_request(request, exception):
    if is_api_request(request):
        return json_error("Bad request.", status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception):
    if is_api_request(request):
        return json_error("Permission denied.", status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception):
    if is_api_request(request):
        return json_error("Not found.", status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if is_api_request(request):
        return json_error("Server error.", status=500)
    return defaults.server_error(request)


def csrf_failure(request, reason=""):
    if is_api_request(request):
        return json_error(f"CSRF verification failed: {reason}", status=403)
    return html_csrf_failure(request, reason=reason)

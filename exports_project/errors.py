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


ERROR_MESSAGES = {400: "Bad request.", 403: "Permission denied.", 404: "Not found.", 405: "Method not allowed."}


class ApiErrorsAsJson:
    """
    Every error answer under /api/ is JSON, DEBUG or not.

    The handlers above cover DEBUG off; with DEBUG on Django answers an unknown URL, an Http404 or an
    exception (a body over DATA_UPLOAD_MAX_MEMORY_SIZE included) with its HTML debug pages, which also
    show the settings. Outermost, this sees the answer whatever produced it.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            is_api_request(request)
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            message = ERROR_MESSAGES.get(response.status_code, "Server error." if response.status_code >= 500 else "")
            return json_error(message or response.reason_phrase, status=response.status_code)
        return response


def csrf_failure(request, reason=""):
    if is_api_request(request):
        return json_error(f"CSRF verification failed: {reason}", status=403)
    return html_csrf_failure(request, reason=reason)

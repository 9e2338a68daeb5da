"""Small helpers shared by the JSON API views of every app."""

import json
from functools import wraps

from .errors import json_error


def api_view(*methods: str):
    """Answer JSON 401 for anonymous users and 405 for other methods, instead of redirects and HTML."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return json_error("Authentication required.", status=401)
            if request.method not in methods:
                response = json_error(f"Method {request.method} not allowed.", status=405)
                response["Allow"] = ", ".join(methods)
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def isoformat(value):
    """ISO 8601 with microseconds always, so clients can compare and hand back exact cursors."""
    return value.isoformat(timespec="microseconds") if value is not None else None


class InvalidBody(ValueError):
    """The request body is not the JSON object the endpoint expects; the message says why."""


def json_body(request) -> dict:
    if request.content_type != "application/json":
        raise InvalidBody("Send a JSON object with Content-Type: application/json.")
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidBody("The body is not valid JSON.") from None
    except RecursionError:
        raise InvalidBody("The body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise InvalidBody("The body must be a JSON object.")
    return body

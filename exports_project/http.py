"""Small helpers shared by the JSON API views of every app."""

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
    return value.isoformat() if value is not None else None

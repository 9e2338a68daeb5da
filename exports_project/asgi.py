"""
ASGI entry point: HTTP goes to Django (but for the workers' events, exports/routing.py), websockets to the
Channels routes.

The Django ASGI application is created before anything imports models, as
Channels' documentation requires.
"""

import os
from urllib.parse import urlsplit

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exports_project.settings")
django_asgi_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier  # noqa: E402
from django.urls import re_path  # noqa: E402

from exports.routing import http_urlpatterns, websocket_urlpatterns  # noqa: E402


class SameOriginOnly:
    """
    Accept a socket only from a page of this very site: the Origin's host and port are the request's own.

    AllowedHostsOriginValidator compares host names only, so a page served by anything else on an
    allowed host (another port of 127.0.0.1, say) could open sockets with the user's cookies.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        origin = urlsplit(headers.get(b"origin", b"").decode("latin-1"))
        host = headers.get(b"host", b"").decode("latin-1")
        if origin.scheme not in DEFAULT_PORTS or address(origin.scheme, origin.netloc) != address(origin.scheme, host):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


DEFAULT_PORTS = {"http": 80, "https": 443}


def address(scheme: str, netloc: str) -> tuple[str | None, int | None]:
    """(host, port) of a netloc, the scheme's port when none is written; (None, None) when it is no address."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        return parts.hostname, parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        return None, None


application = ProtocolTypeRouter(
    {
        "http": URLRouter([*http_urlpatterns, re_path(r"", django_asgi_application)]),
        "websocket": SameOriginOnly(AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))),
    }
)

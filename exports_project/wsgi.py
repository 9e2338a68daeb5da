"""WSGI entry point, for management tooling only: the service runs on ASGI (daphne)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exports_project.settings")
application = get_wsgi_application()

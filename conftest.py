"""
Test-session set-up that must happen before Django reads its settings.

Each run gets its own DATA_DIR, so tests never touch `var/`. Tests that need a
real PostgreSQL or Redis run in their own pass (see tests/run_suites.py): when
the service is unreachable they are skipped with the reason, or, with CI=true,
the run fails, because CI must prove them.
"""

import os
import socket
import tempfile
from urllib.parse import urlsplit

import pytest

os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="exports-test-")
os.environ.setdefault("CHANNELS_PREFIX", f"exports-test-{os.getpid()}")

IN_CI = os.environ.get("CI", "").lower() == "true"


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2):
            return True
    except OSError:
        return False


def _address(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def _service_problems() -> list[str]:
    problems = []
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url.startswith(("postgres://", "postgresql://")) and not _reachable(database_url):
        problems.append(f"PostgreSQL at {_address(database_url)} is unreachable")
    redis_url = os.environ.get("REDIS_URL", "")
    if redis_url and not _reachable(redis_url):
        problems.append(f"Redis at {_address(redis_url)} is unreachable")
    return problems


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    problems = _service_problems()
    if problems and IN_CI:
        pytest.exit(f"CI=true and {'; '.join(problems)}: these tests must run in CI.", returncode=3)
    on_postgres = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    for item in items:
        if problems:
            item.add_marker(pytest.mark.skip(reason="; ".join(problems)))
        elif "postgres" in item.keywords and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: runs in the Postgres pass (DATABASE_URL)"))
        elif "redis" in item.keywords and not settings.REDIS_URL:
            item.add_marker(pytest.mark.skip(reason="needs Redis: runs in the Redis pass (REDIS_URL)"))

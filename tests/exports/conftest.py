import time

import pytest

from exports.executor import use_backend


@pytest.fixture(autouse=True)
def fresh_executor():
    """Each test gets an executor (and circuit breaker) built from its own settings."""
    use_backend(None)
    yield
    use_backend(None)


@pytest.fixture
def eager_checks(settings):
    """Let every look read progress and ask the executor (no claim intervals)."""
    settings.EXPORTS_PROGRESS_INTERVAL_SECONDS = 0
    settings.EXPORTS_EXECUTOR_INTERVAL_SECONDS = 0


def wait_until(predicate, *, timeout=60.0, step=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")

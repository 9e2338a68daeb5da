import uuid

import pytest
from hypothesis import HealthCheck, settings

from exports.executor import use_backend
from modal_jobs.executors import CallState

# At least 200 examples per endpoint, every run; function-scoped fixtures (the database) are shared by
# the examples of one test on purpose: rows created by one example must not leak into the next one's checks.
settings.register_profile(
    "fuzz", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class RecordingExecutor:
    """Accepts every spawn without running anything, so valid fuzz examples do not start renders."""

    name = "local"

    def __init__(self):
        self.spawned: list[tuple[str, dict]] = []

    def spawn(self, kind, payload):
        self.spawned.append((kind, payload))
        return f"local-{uuid.uuid4().hex}"

    def poll(self, call_id):
        return CallState.running()

    def cancel(self, call_id):
        return None


@pytest.fixture
def recording_executor():
    executor = RecordingExecutor()
    use_backend(executor)
    yield executor
    use_backend(None)

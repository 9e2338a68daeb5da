import pytest

from exports.executor import use_backend
from modal_jobs.backends import get_backend
from modal_jobs.media import generate_test_clip
from projects import services as project_services

from ..faults import FaultInjectingBackend
from ..processes import kill_all_workers, wait_for

__all__ = ["wait_for"]


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


@pytest.fixture
def executor(settings, tmp_path):
    """The real LocalBackend (its own folder per test) behind the fault-injecting wrapper, as the app's executor."""
    settings.LOCAL_EXECUTOR_DIR = tmp_path / "executor"
    settings.EXPORTS_BREAKER_COOLDOWN_SECONDS = 0.5
    wrapper = FaultInjectingBackend(get_backend())
    use_backend(wrapper)
    yield wrapper
    wrapper.release()
    kill_all_workers(settings.LOCAL_EXECUTOR_DIR)


@pytest.fixture(scope="session")
def long_video_path(media_dir):
    path = media_dir / "long.mp4"
    generate_test_clip(path, pattern="testsrc2", tone_hz=440, seconds=10, width=1280, height=720)
    return path


@pytest.fixture
def long_clip(project, long_video_path, monkeypatch):
    """A clip whose export takes half a minute here (x264's slowest preset), long enough to act mid-way."""
    monkeypatch.setenv("EXPORTS_X264_PRESET", "veryslow")
    return project_services.add_clip(project=project, path=str(long_video_path), original_name="long.mp4")

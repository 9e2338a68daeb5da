"""The settings pick the executor."""

from modal_jobs.backends import get_backend
from modal_jobs.local_backend import LocalBackend
from modal_jobs.modal_backend import ModalBackend


def test_the_embedded_default_is_the_local_backend_on_the_media_folder(settings, tmp_path):
    settings.EXPORTS_BACKEND = "local"
    settings.LOCAL_EXECUTOR_DIR = tmp_path / "executor"
    settings.LOCAL_EXECUTOR_MAX_WORKERS = 3
    backend = get_backend()
    assert isinstance(backend, LocalBackend)
    assert backend.store_config == {"type": "filesystem", "root": str(settings.MEDIA_ROOT)}
    assert backend.max_workers == 3


def test_modal_is_picked_with_its_app_name_and_deadline(settings):
    settings.EXPORTS_BACKEND = "modal"
    settings.MODAL_APP_NAME = "exports-staging"
    settings.MODAL_CALL_DEADLINE_SECONDS = 2.5
    backend = get_backend()
    assert isinstance(backend, ModalBackend)
    assert (backend.app_name, backend.deadline_seconds) == ("exports-staging", 2.5)

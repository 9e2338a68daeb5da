"""The settings pick the executor, and the worker side is told the store the web app uses."""

from io import BytesIO
from pathlib import Path

from django.core.files.storage import default_storage

from exports.executor import backend_from_settings
from exports.storage import object_store
from modal_jobs.local_backend import LocalBackend
from modal_jobs.modal_backend import ModalBackend
from modal_jobs.store import FileSystemStore, S3Store


def test_the_embedded_default_is_the_local_backend_on_the_media_folder(settings, tmp_path):
    settings.EXPORTS_BACKEND = "local"
    settings.LOCAL_EXECUTOR_DIR = tmp_path / "executor"
    settings.LOCAL_EXECUTOR_MAX_WORKERS = 3
    backend = backend_from_settings()
    assert isinstance(backend, LocalBackend)
    assert backend.store_config == {"type": "filesystem", "root": str(settings.MEDIA_ROOT)}
    assert backend.max_workers == 3


def test_modal_is_picked_with_its_app_name(settings):
    settings.EXPORTS_BACKEND = "modal"
    settings.MODAL_APP_NAME = "exports-staging"
    backend = backend_from_settings()
    assert isinstance(backend, ModalBackend)
    assert backend.app_name == "exports-staging"


def test_records_are_read_from_the_media_folder_of_the_default_storage(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    store = object_store()
    assert isinstance(store, FileSystemStore)
    assert store.root == Path(default_storage.location) == tmp_path / "media"


def test_on_s3_records_are_read_through_the_default_storages_own_client(s3_storage):
    """Before: a second boto3 client was built from AWS_* settings, beside django-storages' own."""
    default_storage.save("exports/job/progress.json", BytesIO(b'{"percent": 5}'))
    store = object_store()
    assert isinstance(store, S3Store)
    assert store.client is default_storage.connection.meta.client
    assert store.read_bytes("exports/job/progress.json") == b'{"percent": 5}'

"""Pick the executor the settings name; the only module of modal_jobs that reads Django settings."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .executors import ExecutorBackend


def store_config_from_settings() -> dict[str, Any]:
    """Tell local workers which store to use: the media folder, or the S3 bucket (credentials from the env)."""
    from django.conf import settings

    if settings.AWS_STORAGE_BUCKET_NAME:
        return {"type": "s3"}
    return {"type": "filesystem", "root": str(settings.MEDIA_ROOT)}


def get_backend() -> ExecutorBackend:
    from django.conf import settings

    if settings.EXPORTS_BACKEND == "modal":
        from .modal_backend import ModalBackend

        return ModalBackend(
            app_name=settings.MODAL_APP_NAME,
            deadline_seconds=settings.MODAL_CALL_DEADLINE_SECONDS,
            pool_size=settings.EXPORTS_EXECUTOR_CONCURRENCY,
        )
    from .local_backend import LocalBackend

    return LocalBackend(
        root=settings.LOCAL_EXECUTOR_DIR,
        store_config=store_config_from_settings(),
        max_workers=settings.LOCAL_EXECUTOR_MAX_WORKERS,
        time_limit_seconds=settings.LOCAL_EXECUTOR_TIME_LIMIT_SECONDS,
    )


def store_from_settings():
    """The object store as the web app reads it: the same bucket or folder as Django's default storage."""
    from django.conf import settings

    from .store import FileSystemStore

    if settings.AWS_STORAGE_BUCKET_NAME:
        options = settings.STORAGES["default"]["OPTIONS"]
        return _s3_store(
            tuple(
                {
                    "AWS_STORAGE_BUCKET_NAME": options["bucket_name"],
                    "AWS_S3_ENDPOINT_URL": options.get("endpoint_url") or "",
                    "AWS_ACCESS_KEY_ID": options.get("access_key") or "",
                    "AWS_SECRET_ACCESS_KEY": options.get("secret_key") or "",
                    "AWS_S3_REGION_NAME": options.get("region_name") or "auto",
                    "AWS_S3_ADDRESSING_STYLE": options.get("addressing_style") or "path",
                }.items()
            )
        )
    return FileSystemStore(settings.MEDIA_ROOT)


@lru_cache(maxsize=4)
def _s3_store(environment: tuple):
    """One boto3 client per configuration: building one costs far more than the progress read it serves."""
    from .store import S3Store

    return S3Store.from_environment(dict(environment))

"""
The web app's way into the object store the workers write: Django's default storage.

Media, clips and working videos go through `default_storage` itself. The
worker's records are read through `object_store()`, the worker's own small
interface (modal_jobs.store) laid over the same storage and the same client:
it adds what Django's storage API lacks and a hostile record needs, reads
capped at a size and never following a link out of the folder or blocking on
a FIFO. There is one configuration (settings.STORAGES) and one boto3 client.
"""

from __future__ import annotations

from typing import Any

from django.core.files.storage import FileSystemStorage, default_storage

from modal_jobs.store import FileSystemStore, ObjectStore, S3Store


def object_store() -> ObjectStore:
    """The store under default_storage: its folder, or its bucket through its own (per-thread) boto3 client."""
    if isinstance(default_storage, FileSystemStorage):
        return FileSystemStore(default_storage.location)
    from storages.backends.s3 import S3Storage  # lazily: only an S3 deployment pays for importing boto3

    if isinstance(default_storage, S3Storage):
        return S3Store(bucket=default_storage.bucket_name, client=default_storage.connection.meta.client)
    raise TypeError(f"No object store for the default storage {type(default_storage).__name__}.")


def worker_store_config() -> dict[str, Any]:
    """What a local worker is told to open: the same folder, or the bucket (credentials from its environment)."""
    if isinstance(default_storage, FileSystemStorage):
        return {"type": "filesystem", "root": str(default_storage.location)}
    return {"type": "s3"}

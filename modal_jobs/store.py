"""
The object store as the worker sees it; imports no Django.

One tiny interface, two implementations: plain files under a root folder (the
embedded default, the same folder Django's FileSystemStorage uses) and an S3
bucket through boto3 (Cloudflare R2 in production, the same bucket
django-storages uses). Keys are always built from ids, never from user input.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

TransferProgress = Callable[[int, int], None]  # (bytes done, bytes total)
PRESIGNED_READ_SECONDS = 24 * 3600  # longer than any call runs (modal_app.TIME_LIMIT_SECONDS)
READ_REQUEST_BYTES = 8 * 1024 * 1024  # about 5 s of 12 Mbit/s footage a request
READ_STALL_SECONDS = 30  # a read of a store that sends nothing for this long is cut, and asked again
# The variables S3Store.from_environment() cannot do without against R2 (the region defaults to "auto").
S3_REQUIRED_ENVIRONMENT = (
    "AWS_STORAGE_BUCKET_NAME",
    "AWS_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


class ObjectStore(Protocol):
    appends_in_place: bool

    def write_bytes(self, key: str, data: bytes) -> None:
        """Store `data` under `key` atomically: readers see the old object or the new one."""

    def read_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes | None:
        """Return the object (at most its first max_bytes), or None when there is none."""

    def append_bytes(self, key: str, data: bytes) -> None:
        """Add `data` to the end of the object (creating it)."""

    def upload_file(self, key: str, path: str | Path, on_progress: TransferProgress | None = None) -> int:
        """Store a local file; return its size."""

    def download_file(self, key: str, path: str | Path, on_progress: TransferProgress | None = None) -> int:
        """Fetch an object into a local file; return its size."""

    def ffmpeg_input(self, key: str) -> list[str]:
        """
        ffmpeg's input arguments that read the object where it is (-i and its options), or FileNotFoundError:
        ffmpeg then reads about the byte ranges it seeks to, where a download would bring the whole object.
        """

    def size(self, key: str) -> int | None:
        """Return the object's size, or None when there is none."""

    def delete(self, key: str) -> None:
        """Remove the object if it exists."""

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Yield the keys under `prefix`."""


class FileSystemStore:
    appends_in_place = True
    chunk_bytes = 1024 * 1024

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        try:
            path = (self.root / key).resolve()
        except (RuntimeError, OSError) as error:  # a symlink loop (RuntimeError before Python 3.13)
            raise ValueError(f"Key {key!r} cannot be resolved: {error}") from error
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"Key {key!r} escapes the store.")
        return path

    def open_object(self, key: str) -> BinaryIO:
        """
        Open an object for reading, or raise FileNotFoundError. Only a regular file inside the store is an
        object: a directory or a FIFO in its place raises OSError (a FIFO would block the reader for ever),
        a link that leaves the store ValueError.
        """
        return open_regular_file(self.path(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def read_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes | None:
        try:
            with self.open_object(key) as handle:
                return handle.read(-1 if max_bytes is None else max_bytes)
        except FileNotFoundError:
            return None

    def append_bytes(self, key: str, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as handle:
            handle.write(data)

    def upload_file(self, key: str, path: str | Path, on_progress: TransferProgress | None = None) -> int:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        with open(path, "rb") as reader:
            size = _copy(reader, partial, on_progress, self.chunk_bytes)
        os.replace(partial, target)
        return size

    def download_file(self, key: str, path: str | Path, on_progress: TransferProgress | None = None) -> int:
        try:
            reader = self.open_object(key)
        except FileNotFoundError:
            raise FileNotFoundError(f"No object {key!r} in the store.") from None
        with reader:
            return _copy(reader, Path(path), on_progress, self.chunk_bytes)

    def ffmpeg_input(self, key: str) -> list[str]:
        with self.open_object(key):  # a FIFO in its place would block ffmpeg for ever: refuse it here
            return ["-i", f"file:{self.path(key)}"]  # file: so that a colon in a folder's name is no protocol

    def size(self, key: str) -> int | None:
        """The object's size, or None when there is no object: nothing, or no regular file inside the store."""
        try:
            found = os.stat(self.path(key))
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        return found.st_size if stat.S_ISREG(found.st_mode) else None

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def list_keys(self, prefix: str) -> Iterator[str]:
        base = self.root.resolve()
        for path in sorted(self.path(prefix).rglob("*")) if self.path(prefix).exists() else []:
            if path.is_file() and not path.name.startswith("."):
                yield path.relative_to(base).as_posix()


def open_regular_file(path: str | Path, *, follow_links: bool = True) -> BinaryIO:
    """Open a file for reading, raising OSError unless it is a regular file: a FIFO must never block a reader."""
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_links else os.O_NOFOLLOW)
    descriptor = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(errno.EINVAL, "Not a regular file", str(path))
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _copy(reader: BinaryIO, target: Path, on_progress: TransferProgress | None, chunk_bytes: int) -> int:
    total = os.fstat(reader.fileno()).st_size
    done = 0
    with open(target, "wb") as writer:
        while chunk := reader.read(chunk_bytes):
            writer.write(chunk)
            done += len(chunk)
            if on_progress:
                on_progress(done, total)
    if on_progress and total == 0:
        on_progress(0, 0)
    return done


class S3Store:
    """An S3 bucket (R2 in production) through boto3; objects are written whole, so appends rewrite."""

    appends_in_place = False

    def __init__(self, *, bucket: str, client: Any):
        self.bucket = bucket
        self.client = client

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> S3Store:
        """Build from the AWS_* variables that the Django settings and the Modal secret share."""
        import boto3
        from botocore.config import Config

        environ = os.environ if environ is None else environ
        client = boto3.client(
            "s3",
            endpoint_url=environ.get("AWS_S3_ENDPOINT_URL") or None,
            aws_access_key_id=environ.get("AWS_ACCESS_KEY_ID") or None,
            aws_secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY") or None,
            region_name=environ.get("AWS_S3_REGION_NAME") or "auto",
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": environ.get("AWS_S3_ADDRESSING_STYLE", "path")},
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
            ),
        )
        return cls(bucket=environ["AWS_STORAGE_BUCKET_NAME"], client=client)

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def read_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes | None:
        from botocore.exceptions import ClientError

        ranged = {} if max_bytes is None else {"Range": f"bytes=0-{max_bytes - 1}"}
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key, **ranged)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""  # a range of an empty object
            raise

    def append_bytes(self, key: str, data: bytes) -> None:
        self.write_bytes(key, (self.read_bytes(key) or b"") + data)

    def upload_file(self, key: str, path: str | Path, on_progress: TransferProgress | None = None) -> int:
        total = Path(path).stat().st_size
        self.client.upload_file(str(path), self.bucket, key, Callback=_byte_counter(total, on_progress))
        return total

    def download_file(self, key: str, path: str | Path, on_progress: TransferProgress | None = None) -> int:
        total = self._existing_size(key)
        self.client.download_file(self.bucket, key, str(path), Callback=_byte_counter(total, on_progress))
        return total

    def ffmpeg_input(self, key: str) -> list[str]:
        """
        A presigned GET, good for as long as a call may run, asked for in ranges of READ_REQUEST_BYTES: ffmpeg's
        first request would otherwise ask for the whole object, which comes for as long as it reads the header.
        A connection cut or a store that stops answering mid-read is asked again from where it stopped: without
        it, ffmpeg takes the cut for the object's end.
        """
        self._existing_size(key)
        request = {"Bucket": self.bucket, "Key": key}
        url = self.client.generate_presigned_url("get_object", Params=request, ExpiresIn=PRESIGNED_READ_SECONDS)
        ranges = ["-multiple_requests", "1", "-request_size", str(READ_REQUEST_BYTES)]
        ranges += ["-initial_request_size", str(READ_REQUEST_BYTES // 8)]
        again = ["-reconnect", "1", "-reconnect_on_network_error", "1", "-reconnect_max_retries", "5"]
        again += ["-reconnect_delay_max", "10", "-rw_timeout", str(READ_STALL_SECONDS * 1_000_000)]
        return [*ranges, *again, "-i", url]

    def _head(self, key: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise

    def size(self, key: str) -> int | None:
        head = self._head(key)
        return None if head is None else head["ContentLength"]

    def _existing_size(self, key: str) -> int:
        """The object's size, or FileNotFoundError: what a reader of a missing object is told."""
        total = self.size(key)
        if total is None:
            raise FileNotFoundError(f"No object {key!r} in the store.")
        return total

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def list_keys(self, prefix: str) -> Iterator[str]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]


def _byte_counter(total: int, on_progress: TransferProgress | None):
    done = 0

    def callback(transferred: int) -> None:
        nonlocal done
        done += transferred
        if on_progress:
            on_progress(done, total)

    return callback


def store_from_config(config: dict[str, Any]) -> ObjectStore:
    """Build the store a local worker was told to use (see LocalBackend)."""
    if config["type"] == "filesystem":
        return FileSystemStore(config["root"])
    if config["type"] == "s3":
        return S3Store.from_environment()
    raise ValueError(f"Unknown store type {config['type']!r}.")

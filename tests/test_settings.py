"""Settings come from the environment, with safe embedded defaults; each case runs in a fresh interpreter."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json
from django.conf import settings
database = settings.DATABASES["default"]
print(json.dumps({
    "debug": settings.DEBUG,
    "engine": database["ENGINE"],
    "name": str(database["NAME"]),
    "options": {key: value for key, value in database.get("OPTIONS", {}).items() if key != "init_command"},
    "init_command": database.get("OPTIONS", {}).get("init_command", ""),
    "health_checks": database.get("CONN_HEALTH_CHECKS", False),
    "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "cache": settings.CACHES["default"]["BACKEND"],
    "storage": settings.STORAGES["default"]["BACKEND"],
    "media_root": str(settings.MEDIA_ROOT),
    "backend": settings.EXPORTS_BACKEND,
    "chunk_seconds": settings.EXPORTS_CHUNK_SECONDS,
    "allowed_hosts": settings.ALLOWED_HOSTS,
}))
"""


def load_settings(tmp_path, **variables):
    clean = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL", "DEBUG"}}
    env = {**clean, "DJANGO_SETTINGS_MODULE": "exports_project.settings", "DATA_DIR": str(tmp_path), **variables}
    completed = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return completed


def test_the_embedded_default_needs_no_configuration(tmp_path):
    completed = load_settings(tmp_path)
    assert completed.returncode == 0, completed.stderr
    loaded = json.loads(completed.stdout)
    assert loaded["debug"] is True
    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert loaded["name"] == str(tmp_path / "db.sqlite3")
    assert loaded["options"]["timeout"] == 20
    assert loaded["options"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in loaded["init_command"]
    assert loaded["layer"] == "channels.layers.InMemoryChannelLayer"
    assert loaded["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert loaded["storage"] == "django.core.files.storage.FileSystemStorage"
    assert loaded["media_root"] == str(tmp_path / "media")
    assert loaded["backend"] == "local"
    assert loaded["chunk_seconds"] == 0  # unpinned local workers share every core: chunks would only add work


def test_production_services_come_from_urls(tmp_path):
    completed = load_settings(
        tmp_path,
        DATABASE_URL="postgres://exports:pw@db.internal:5432/exports",
        REDIS_URL="redis://cache.internal:6379/0",
        AWS_STORAGE_BUCKET_NAME="exports",
        EXPORTS_BACKEND="modal",
    )
    assert completed.returncode == 0, completed.stderr
    loaded = json.loads(completed.stdout)
    assert loaded["engine"] == "django.db.backends.postgresql"
    assert loaded["name"] == "exports"
    assert loaded["health_checks"] is True
    assert loaded["layer"] == "channels_redis.core.RedisChannelLayer"
    assert loaded["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert loaded["storage"] == "storages.backends.s3.S3Storage"
    assert loaded["backend"] == "modal"
    assert loaded["chunk_seconds"] == 60  # a container each: long exports render in chunks


@pytest.mark.parametrize(
    ("variables", "chunk_seconds"),
    [({"LOCAL_EXECUTOR_CORES_PER_WORKER": "1"}, 60), ({"EXPORTS_BACKEND": "modal", "EXPORTS_CHUNK_SECONDS": "0"}, 0)],
)
def test_chunks_are_on_where_workers_have_cores_of_their_own_unless_turned_off(tmp_path, variables, chunk_seconds):
    completed = load_settings(tmp_path, **variables)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["chunk_seconds"] == chunk_seconds


def test_debug_off_refuses_to_start_without_a_secret_key(tmp_path):
    completed = load_settings(tmp_path, DEBUG="false", ALLOWED_HOSTS="exports.example.com")
    assert completed.returncode != 0
    assert "With DEBUG off, Set the SECRET_KEY environment variable" in completed.stderr


@pytest.mark.parametrize("variables", [{}, {"SECRET_KEY": "x" * 50}])
def test_debug_off_has_no_default_hosts(tmp_path, variables):
    completed = load_settings(tmp_path, DEBUG="false", **variables)
    assert completed.returncode != 0
    assert "With DEBUG off" in completed.stderr

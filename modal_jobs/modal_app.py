"""
The deployable Modal app: one function per export kind, and one per kind for its chunks.
Deploy from the project root with

    modal deploy modal_jobs/modal_app.py

It needs the `exports-r2` secret in the Modal workspace, holding the AWS_* variables that
S3Store.from_environment() reads; the ones it cannot do without are declared as the secret's
required keys, so a deploy without them fails instead of the first export. The image installs
modal_jobs/requirements.txt, the exact pins the web side installs too. Imports no Django; the
worker (and with it PyAV and boto3) is imported inside the function bodies, so importing this
module (to deploy it, or in tests) needs neither.

Retries are 0: the worker returns its failures instead of raising them, and a failure is
not worth repeating; a raise or a time limit would otherwise be re-run for up to 4 hours more.
Modal still restarts an input on its own after a preemption or an internal failure.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import modal

from modal_jobs.modal_backend import CHUNK_FUNCTION_NAMES, FUNCTION_NAMES
from modal_jobs.store import S3_REQUIRED_ENVIRONMENT

APP_NAME = "exports"
R2_SECRET_NAME = "exports-r2"
TIME_LIMIT_SECONDS = 4 * 60 * 60  # long multi-clip exports run 40+ minutes
STARTUP_LIMIT_SECONDS = 10 * 60  # left unset, the startup limit would be the 4 hours too (SDK default)
NVENC_ENCODER = {"EXPORTS_VIDEO_ENCODER": "h264_nvenc"}  # read by pipeline.py; libx264 when unset or unusable
WORKER_REQUIREMENTS = Path(__file__).with_name("requirements.txt")
# Preemptible, the default: a preempted input restarts under the same call id and the worker counts the
# attempt, so the export recovers at the cost of the render so far; non-preemptible capacity costs more on
# every export to save that on a few.
NONPREEMPTIBLE = False

app = modal.App(APP_NAME)

image = (
    modal.Image.debian_slim(python_version="3.11")
    .pip_install_from_requirements(str(WORKER_REQUIREMENTS))
    .add_local_python_source("modal_jobs")
)
r2_secret = modal.Secret.from_name(R2_SECRET_NAME, required_keys=list(S3_REQUIRED_ENVIRONMENT))


def run_in_modal(payload: dict[str, Any]) -> dict[str, Any]:
    """
    Run the worker on this call; never raise.

    The worker already returns its failures, but anything before it (the store, an import)
    could raise, and an exception coming out of FunctionCall.get() would be read as being
    about the call: a TimeoutError as "still running", an OSError as "Modal unreachable".
    BaseExceptions go through: Modal's InputCancellation (a cancel) and KeyboardInterrupt (a preemption,
    which Modal restarts) must reach Modal.

    Modal 1.6.4 tells user code no attempt number (the retry count stays inside its IOContext),
    so attempt is 1; a restarted input runs again with the same call id. A chunked export's chunks are
    calls of the app's chunk function for its kind, spawned from here (ModalBackend as their executor).
    """
    try:
        from modal_jobs.modal_backend import ModalBackend
        from modal_jobs.store import S3Store
        from modal_jobs.worker import log_to_stderr, run_export

        log_to_stderr()
        store = S3Store.from_environment()
        call_id = modal.current_function_call_id() or ""
        chunk_calls = ModalBackend(app_name=APP_NAME)
        return run_export(payload, store=store, call_id=call_id, attempt=1, chunk_calls=chunk_calls)
    except Exception as error:
        return _could_not_run("export", error)


def run_chunk_in_modal(payload: dict[str, Any]) -> dict[str, Any]:
    """Render one chunk of a chunked export (worker.run_chunk); never raise, as run_in_modal."""
    try:
        from modal_jobs.store import S3Store
        from modal_jobs.worker import log_to_stderr, run_chunk

        log_to_stderr()
        return run_chunk(payload, store=S3Store.from_environment())
    except Exception as error:
        return _could_not_run("chunk", error)


def _could_not_run(what: str, error: Exception) -> dict[str, Any]:
    traceback.print_exc()  # into the Modal logs
    # By hand, not records.error_result: the failure may be that modal_jobs itself could not be imported.
    return {"status": "error", "message": f"The {what} could not run: {type(error).__name__}: {error}"}


# What every function shares; each kind adds its own resources, the same for its export and its chunks.
COMMON_OPTIONS = {
    "image": image,
    "secrets": [r2_secret],
    "timeout": TIME_LIMIT_SECONDS,
    "startup_timeout": STARTUP_LIMIT_SECONDS,
    "retries": 0,
    "nonpreemptible": NONPREEMPTIBLE,
}
RESOURCES: dict[str, dict[str, Any]] = {
    "multi_clip": {"cpu": 8.0, "memory": 8192},
    "framing_ai": {
        "env": NVENC_ENCODER,  # becomes a Secret.from_dict on these functions only; the image stays shared
        "gpu": "L4",
        "cpu": 8.0,  # decoding and the lanczos scaling still run on the CPU; NVENC does the encoding
        "memory": 16384,
    },
    "overlay": {"cpu": 8.0, "memory": 8192},
}


def options(kind: str, name: str) -> dict[str, Any]:
    return {"name": name, **RESOURCES[kind], **COMMON_OPTIONS}


@app.function(**options("multi_clip", FUNCTION_NAMES["multi_clip"]))
def export_multi_clip(payload: dict[str, Any]) -> dict[str, Any]:
    return run_in_modal(payload)


@app.function(**options("framing_ai", FUNCTION_NAMES["framing_ai"]))
def export_framing_ai(payload: dict[str, Any]) -> dict[str, Any]:
    return run_in_modal(payload)


@app.function(**options("overlay", FUNCTION_NAMES["overlay"]))
def export_overlay(payload: dict[str, Any]) -> dict[str, Any]:
    return run_in_modal(payload)


@app.function(**options("multi_clip", CHUNK_FUNCTION_NAMES["multi_clip"]))
def chunk_multi_clip(payload: dict[str, Any]) -> dict[str, Any]:
    return run_chunk_in_modal(payload)


@app.function(**options("framing_ai", CHUNK_FUNCTION_NAMES["framing_ai"]))
def chunk_framing_ai(payload: dict[str, Any]) -> dict[str, Any]:
    return run_chunk_in_modal(payload)


@app.function(**options("overlay", CHUNK_FUNCTION_NAMES["overlay"]))
def chunk_overlay(payload: dict[str, Any]) -> dict[str, Any]:
    return run_chunk_in_modal(payload)

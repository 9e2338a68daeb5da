"""
The deployable app, read through the SDK's own objects (modal 1.6.4): no network, no token, no deploy.

Where modal keeps what we check, for a function defined locally with @app.function:
- the app's registry `app._local_state.functions` (name -> _Function) is what `modal deploy` publishes
  (runner.py reads it as `app_local_state.functions`); `App.registered_functions` returns the same dict
  but is deprecated in 1.6.4;
- `Function.info()` is public and, for a local definition, returns the FunctionInfo that `_from_local`
  built from the decorator's arguments (timeout, startup timeout, retries, gpus, cpu, memory, secrets)
  without asking the server;
- `Function._spec_` (the _FunctionSpec that `modal shell` uses) holds the Secret objects themselves:
  a `from_name` secret keeps its name, and the `env=` argument becomes a `Secret.from_dict` whose
  `_load_env_dict()` returns the variables that deploying sends.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import modal
import pytest
from modal._utils.async_utils import synchronizer
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from modal_jobs import modal_app
from modal_jobs.modal_backend import CHUNK_FUNCTION_NAMES, FUNCTION_NAMES, ModalBackend
from modal_jobs.store import S3_REQUIRED_ENVIRONMENT

CPU_KINDS = ("multi_clip", "overlay")
ROOT = Path(__file__).resolve().parents[2]
REAL_FROM_ENV = inspect.getattr_static(modal.client._Client, "from_env")


@pytest.fixture(autouse=True)
def no_modal_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to reach Modal fails the test: everything here must be answered locally."""

    def refuse(*args: Any, **kwargs: Any):
        raise AssertionError("the test tried to create a Modal client")

    monkeypatch.setattr(modal.client._Client, "from_env", refuse)
    yield


def deployed_functions() -> dict[str, modal.Function]:
    registry = modal_app.app._local_state.functions
    return {name: synchronizer._translate_out(function) for name, function in registry.items()}


def function_for(kind: str) -> modal.Function:
    return deployed_functions()[FUNCTION_NAMES[kind]]


def secrets_of(function: modal.Function) -> list[Any]:
    return list(function._spec_.secrets)


def environment_of(function: modal.Function) -> dict[str, str]:
    """The variables the function's from_dict secrets set (the env= argument becomes one)."""
    variables: dict[str, str] = {}
    for secret in secrets_of(function):
        if secret._is_ephemeral:
            variables.update(secret._load_env_dict())
    return variables


def test_the_app_is_named_as_the_backend_expects():
    assert modal_app.app.name == "exports"


def test_the_app_deploys_exactly_one_function_per_export_kind_and_one_for_its_chunks_under_the_backends_names():
    assert set(deployed_functions()) == set(FUNCTION_NAMES.values()) | set(CHUNK_FUNCTION_NAMES.values())


@pytest.mark.parametrize("kind", sorted(FUNCTION_NAMES))
def test_a_kinds_chunks_run_on_exactly_what_its_export_runs_on(kind: str):
    """A chunk's frames must come from the encoder its export's would (NVENC where there is a GPU) to join."""
    export, chunk = function_for(kind), deployed_functions()[CHUNK_FUNCTION_NAMES[kind]]

    def resources(function: modal.Function) -> tuple:
        info = function.info()
        limits = (info.timeout, info.startup_timeout, info.max_retries, info.secrets)
        return (info.gpus, info.cpu, info.memory_mib, *limits, environment_of(function), function._spec_.image)

    assert resources(chunk) == resources(export)
    signature = inspect.signature(chunk._raw_f_)
    signature.bind({"export": {}, "chunk": {}})


@pytest.mark.parametrize("kind", sorted(FUNCTION_NAMES))
def test_each_function_takes_the_payload_the_backend_spawns_it_with(kind: str):
    """The backend calls `.spawn(payload)`: one positional argument."""
    signature = inspect.signature(function_for(kind)._raw_f_)

    signature.bind({"job_id": "job-1"})
    with pytest.raises(TypeError):
        signature.bind()


@pytest.mark.parametrize("kind", sorted(FUNCTION_NAMES))
def test_each_function_may_run_for_hours_but_not_take_hours_to_start(kind: str):
    info = function_for(kind).info()

    assert info.timeout >= 3600
    assert info.startup_timeout is not None and info.startup_timeout <= 15 * 60


@pytest.mark.parametrize("kind", sorted(FUNCTION_NAMES))
def test_each_function_is_not_retried_on_failure(kind: str):
    assert function_for(kind).info().max_retries == 0


@pytest.mark.parametrize("kind", sorted(FUNCTION_NAMES))
def test_each_function_has_the_r2_credentials(kind: str):
    function = function_for(kind)

    named_secrets = [secret.name for secret in secrets_of(function) if not secret._is_ephemeral]

    assert named_secrets == ["exports-r2"]
    assert "modal.Secret.from_name('exports-r2')" in function.info().secrets


def test_framing_ai_gets_an_l4_gpu_and_encodes_with_nvenc():
    function = function_for("framing_ai")
    info = function.info()

    assert info.gpus == [("L4", 1)]
    assert function._spec_.gpus == "L4"
    assert environment_of(function) == {"EXPORTS_VIDEO_ENCODER": "h264_nvenc"}


@pytest.mark.parametrize("kind", CPU_KINDS)
def test_the_other_kinds_run_on_several_cpu_cores_with_libx264(kind: str):
    function = function_for(kind)
    info = function.info()

    assert info.gpus == []
    assert function._spec_.gpus is None
    assert info.cpu is not None and info.cpu >= 4
    assert info.memory_mib is not None and info.memory_mib >= 4096
    assert "EXPORTS_VIDEO_ENCODER" not in environment_of(function)  # the pipeline's default is libx264


def test_the_gpu_function_also_has_cpu_and_memory_for_decoding_and_scaling():
    info = function_for("framing_ai").info()

    assert info.cpu is not None and info.cpu >= 4
    assert info.memory_mib is not None and info.memory_mib >= 8192


def test_the_image_carries_the_modal_jobs_package():
    """The function bodies import modal_jobs.worker and modal_jobs.store inside the container."""
    for kind in FUNCTION_NAMES:
        assert "modal_jobs" in function_for(kind)._spec_.image._added_python_source_set


# The function body


@pytest.mark.parametrize("kind", sorted(FUNCTION_NAMES))
def test_the_body_runs_the_worker_with_the_store_and_this_call_id(kind: str, monkeypatch: pytest.MonkeyPatch):
    import modal_jobs.store
    import modal_jobs.worker

    store = object()
    received: dict[str, Any] = {}

    def run_export(payload: dict, *, store: object, call_id: str, attempt: int = 1, chunk_calls=None) -> dict:
        received.update(payload=payload, store=store, call_id=call_id, attempt=attempt, chunk_calls=chunk_calls)
        return {"status": "success", "output_key": "exports/job-1/output.mp4"}

    monkeypatch.setattr(modal_jobs.worker, "run_export", run_export)
    monkeypatch.setattr(modal_jobs.store.S3Store, "from_environment", classmethod(lambda cls: store))
    monkeypatch.setattr(modal, "current_function_call_id", lambda: "fc-current")
    payload = {"job_id": "job-1", "kind": kind}

    result = function_for(kind).local(payload)

    assert result == {"status": "success", "output_key": "exports/job-1/output.mp4"}
    chunk_calls = received.pop("chunk_calls")
    assert received == {"payload": payload, "store": store, "call_id": "fc-current", "attempt": 1}
    assert isinstance(chunk_calls, ModalBackend) and chunk_calls.app_name == modal_app.APP_NAME


@pytest.mark.parametrize("kind", sorted(FUNCTION_NAMES))
def test_a_chunk_function_body_renders_its_chunk_with_the_store(kind: str, monkeypatch: pytest.MonkeyPatch):
    import modal_jobs.store
    import modal_jobs.worker

    store = object()
    received: dict[str, Any] = {}

    def run_chunk(payload: dict, *, store: object) -> dict:
        received.update(payload=payload, store=store)
        return {"status": "success"}

    monkeypatch.setattr(modal_jobs.worker, "run_chunk", run_chunk)
    monkeypatch.setattr(modal_jobs.store.S3Store, "from_environment", classmethod(lambda cls: store))
    payload = {"export": {"job_id": "job-1", "kind": kind}, "chunk": {"index": 0}}

    result = deployed_functions()[CHUNK_FUNCTION_NAMES[kind]].local(payload)

    assert result == {"status": "success"}
    assert received == {"payload": payload, "store": store}


def test_the_body_returns_an_error_instead_of_raising(monkeypatch: pytest.MonkeyPatch):
    """A raise would come out of FunctionCall.get(); a TimeoutError there reads as "still running"."""
    import modal_jobs.store

    def unreachable_store(cls):
        raise TimeoutError("the bucket did not answer")

    monkeypatch.setattr(modal_jobs.store.S3Store, "from_environment", classmethod(unreachable_store))

    result = function_for("overlay").local({"job_id": "job-1"})

    assert result == {
        "status": "error",
        "message": "The export could not run: TimeoutError: the bucket did not answer",
    }


# The image


def pinned_requirements() -> dict[str, str]:
    lines = [line.strip() for line in modal_app.WORKER_REQUIREMENTS.read_text().splitlines()]
    pins = [line for line in lines if line and not line.startswith("#")]
    assert all(pin.count("==") == 1 for pin in pins), pins
    return {canonicalize_name(name): version for name, version in (pin.split("==") for pin in pins)}


def test_the_image_installs_the_worker_requirements_that_the_web_side_installs():
    requirements = (ROOT / "requirements.txt").read_text().splitlines()

    assert modal_app.WORKER_REQUIREMENTS == ROOT / "modal_jobs" / "requirements.txt"
    assert "-r modal_jobs/requirements.txt" in requirements


def test_the_web_side_runs_exactly_the_versions_the_image_pins():
    assert {name: metadata.version(name) for name in pinned_requirements()} == pinned_requirements()


def test_every_package_the_pinned_ones_need_is_pinned_too():
    """An unpinned dependency of a pinned package would still float when the image is rebuilt."""
    pins = pinned_requirements()
    needed = {
        canonicalize_name(requirement.name)
        for name in pins
        for requirement in map(Requirement, metadata.requires(name) or [])
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""})
    }

    assert needed <= set(pins), needed - set(pins)
    assert {"av", "boto3", "imageio-ffmpeg", "pydantic"} <= set(pins)


# The secret, as a deploy hydrates it against the stand-in of Modal's server


@pytest.fixture
def r2_secret(modal_server, monkeypatch):
    # This test does reach a server, the stand-in on loopback: lift no_modal_client's refusal.
    monkeypatch.setattr(modal.client._Client, "from_env", REAL_FROM_ENV)
    yield modal_app.r2_secret
    modal_app.r2_secret._unhydrate()


def test_a_deploy_fails_when_the_secret_lacks_a_key_the_store_needs(modal_server, r2_secret):
    keys = list(S3_REQUIRED_ENVIRONMENT)
    modal_server.create_secret("exports-r2", *keys[1:])

    with pytest.raises(modal.exception.ConflictError, match=keys[0]):
        r2_secret.hydrate()

    [request] = modal_server.requests("SecretGetOrCreate")
    assert (request.deployment_name, list(request.required_keys)) == ("exports-r2", keys)

"""
ModalBackend against a fake of the Modal SDK that raises the real modal.exception classes.

No network and no Modal token: the fake stands in for `modal`; the signature tests
keep it honest about the real SDK surface (modal 1.6.4).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator

import grpclib
import modal
import pytest
from grpclib.exceptions import GRPCError, StreamTerminatedError
from h2.exceptions import ProtocolError
from modal._functions import _Function, _FunctionCall
from modal._utils.grpc_utils import RetryTimeoutError

from modal_jobs.executors import CallStatus, ExecutorUnavailable, SpawnRefused
from modal_jobs.modal_backend import FUNCTION_NAMES, ModalBackend
from modal_jobs.schema import KINDS

from .fake_modal import FakeFunction, FakeFunctionCall, FakeModal, Hangs, Raises, Returns

APP_NAME = "exports"
SHORT_DEADLINE = 0.2
PAYLOAD = {"schema_version": 1, "job_id": "job-1", "kind": "overlay"}
errors = modal.exception


@pytest.fixture
def fake_modal() -> Iterator[FakeModal]:
    fake = FakeModal()
    fake.deploy(APP_NAME, *FUNCTION_NAMES.values())
    yield fake
    fake.release()  # let calls a test left hanging finish, so no thread outlives the test by much


@pytest.fixture
def backend(fake_modal: FakeModal) -> ModalBackend:
    return ModalBackend(app_name=APP_NAME, deadline_seconds=SHORT_DEADLINE, modal_module=fake_modal)


def started_call(backend: ModalBackend) -> str:
    return backend.spawn("overlay", PAYLOAD)


# Spawning


def test_there_is_a_function_name_for_every_export_kind():
    assert set(FUNCTION_NAMES) == set(KINDS)
    assert len(set(FUNCTION_NAMES.values())) == len(FUNCTION_NAMES)


@pytest.mark.parametrize("kind", sorted(FUNCTION_NAMES))
def test_it_spawns_the_function_named_for_the_kind_with_the_payload(
    kind: str, fake_modal: FakeModal, backend: ModalBackend
):
    call_id = backend.spawn(kind, PAYLOAD)

    assert call_id.startswith("fc-")
    [lookup] = fake_modal.calls_to("Function.from_name")
    assert lookup.args == (APP_NAME, FUNCTION_NAMES[kind])
    [spawn] = fake_modal.calls_to("Function.spawn")
    assert (spawn.target, spawn.args, spawn.kwargs) == (FUNCTION_NAMES[kind], (PAYLOAD,), {})


def test_it_refuses_an_unknown_kind_without_asking_modal(fake_modal: FakeModal, backend: ModalBackend):
    with pytest.raises(SpawnRefused, match="Unknown export kind"):
        backend.spawn("slideshow", PAYLOAD)

    assert fake_modal.recorded == []


def test_a_function_that_is_not_deployed_is_a_refused_spawn(fake_modal: FakeModal):
    backend = ModalBackend(app_name="not-deployed", deadline_seconds=SHORT_DEADLINE, modal_module=fake_modal)

    with pytest.raises(SpawnRefused, match="NotFoundError: Lookup failed"):
        backend.spawn("overlay", PAYLOAD)


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidError("invalid argument"),
        errors.ConflictError("failed precondition"),
        errors.ResourceExhaustedError("too many queued inputs"),
        errors.SerializationError("cannot serialize the payload"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_request_modal_rejects_is_a_refused_spawn(error: Exception, fake_modal: FakeModal, backend: ModalBackend):
    fake_modal.next_spawn = Raises(error)

    with pytest.raises(SpawnRefused, match=type(error).__name__) as refused:
        backend.spawn("overlay", PAYLOAD)

    assert refused.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [
        errors.AuthError("Token missing"),
        errors.PermissionDeniedError("no access to the workspace"),
        errors.ConnectionError("could not connect"),
        errors.ServiceError("unavailable"),
        errors.InternalError("internal"),
        errors.ClientClosed(),
        RetryTimeoutError(errors.ServiceError("deadline exceeded")),
        StreamTerminatedError("connection lost"),
        ConnectionResetError("reset by peer"),
        TimeoutError(),
        errors.ExecutionError("not hydrated"),
        RuntimeError("anything else"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_spawn_that_may_have_started_makes_the_executor_unavailable(
    error: Exception, fake_modal: FakeModal, backend: ModalBackend
):
    """A lost reply may hide a started call; it is adopted later from the worker's record, never reported refused."""
    fake_modal.next_spawn = Raises(error)

    with pytest.raises(ExecutorUnavailable) as unavailable:
        backend.spawn("overlay", PAYLOAD)

    assert not isinstance(unavailable.value, SpawnRefused)
    assert unavailable.value.__cause__ is error


def test_a_spawn_that_hangs_is_given_up_after_the_deadline(fake_modal: FakeModal, backend: ModalBackend):
    fake_modal.next_spawn = Hangs()
    started = time.monotonic()

    with pytest.raises(ExecutorUnavailable, match="did not answer spawn within 0.2 s"):
        backend.spawn("overlay", PAYLOAD)

    assert time.monotonic() - started < SHORT_DEADLINE + 0.5


def test_a_spawn_queued_behind_a_hung_call_is_dropped_not_started_late(fake_modal: FakeModal):
    backend = ModalBackend(app_name=APP_NAME, deadline_seconds=SHORT_DEADLINE, modal_module=fake_modal, pool_size=1)
    fake_modal.script("fc-hung", Hangs())
    with pytest.raises(ExecutorUnavailable):
        backend.poll("fc-hung")  # occupies the only thread

    with pytest.raises(ExecutorUnavailable, match="did not answer spawn"):
        backend.spawn("overlay", PAYLOAD)
    fake_modal.release()
    backend._pool.shutdown(wait=True)

    assert fake_modal.calls_to("Function.spawn") == []


# Polling: one test per CallStatus


def test_it_reads_a_still_running_call_as_running_without_waiting(fake_modal: FakeModal, backend: ModalBackend):
    call_id = started_call(backend)

    state = backend.poll(call_id)

    assert state.status is CallStatus.RUNNING
    [get] = fake_modal.calls_to("FunctionCall.get")
    assert (get.target, get.kwargs) == (call_id, {"timeout": 0, "index": 0})


def test_it_reads_a_successful_result_as_succeeded(fake_modal: FakeModal, backend: ModalBackend):
    call_id = started_call(backend)
    result = {"status": "success", "output_key": "exports/job-1/output.mp4", "duration": 12.5}
    fake_modal.script(call_id, Returns(result))

    state = backend.poll(call_id)

    assert state.status is CallStatus.SUCCEEDED
    assert state.result == result


def test_it_reads_the_workers_error_result_as_failed_with_its_message(fake_modal: FakeModal, backend: ModalBackend):
    call_id = started_call(backend)
    fake_modal.script(call_id, Returns({"status": "error", "message": "Clip 3 has no video stream."}))

    state = backend.poll(call_id)

    assert (state.status, state.message) == (CallStatus.FAILED, "Clip 3 has no video stream.")


@pytest.mark.parametrize(
    "error",
    [
        errors.InternalFailure("lost the input too many times"),
        errors.ExecutionError("Could not deserialize remote exception"),
        errors.DeserializationError("Deserialization failed because the 'x' module is not available"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_call_that_failed_in_modal_is_failed(error: Exception, fake_modal: FakeModal, backend: ModalBackend):
    call_id = started_call(backend)
    fake_modal.script(call_id, Raises(error))

    state = backend.poll(call_id)

    assert state.status is CallStatus.FAILED
    assert type(error).__name__ in state.message


def test_an_exception_raised_inside_the_function_is_failed_with_its_type_and_text(
    fake_modal: FakeModal, backend: ModalBackend
):
    call_id = started_call(backend)
    fake_modal.script(call_id, Raises(ModuleNotFoundError("No module named 'av'")))

    state = backend.poll(call_id)

    assert state.status is CallStatus.FAILED
    assert "ModuleNotFoundError: No module named 'av'" in state.message


def test_it_reads_a_call_stopped_by_the_platform_as_terminated(fake_modal: FakeModal, backend: ModalBackend):
    call_id = started_call(backend)
    fake_modal.script(call_id, Raises(errors.RemoteError("Container killed: out of memory")))

    state = backend.poll(call_id)

    assert (state.status, state.message) == (CallStatus.TERMINATED, "Container killed: out of memory")


def test_it_reads_the_functions_time_limit_as_timed_out(fake_modal: FakeModal, backend: ModalBackend):
    call_id = started_call(backend)
    fake_modal.script(call_id, Raises(errors.FunctionTimeoutError("Function timed out after 14400 s")))

    state = backend.poll(call_id)

    assert (state.status, state.message) == (CallStatus.TIMED_OUT, "Function timed out after 14400 s")


def test_it_reads_an_outcome_modal_no_longer_keeps_as_expired(fake_modal: FakeModal, backend: ModalBackend):
    """OutputExpiredError is a modal TimeoutError, not the built-in one: it must not read as running."""
    call_id = started_call(backend)
    fake_modal.script(call_id, Raises(errors.OutputExpiredError()))

    state = backend.poll(call_id)

    assert state.status is CallStatus.EXPIRED
    assert not isinstance(errors.OutputExpiredError(), TimeoutError)


def test_it_reads_an_id_modal_never_heard_of_as_unknown(backend: ModalBackend):
    """NotFoundError is also a grpclib.GRPCError, which otherwise means unavailable."""
    state = backend.poll("fc-never-spawned")

    assert state.status is CallStatus.UNKNOWN
    assert isinstance(errors.NotFoundError("x"), GRPCError)


@pytest.mark.parametrize(
    "error",
    [
        errors.AuthError("Token missing"),
        errors.ConnectionError("could not connect"),
        errors.ClientClosed(),
        errors.ServiceError("unavailable"),
        errors.InternalError("internal"),
        errors.PermissionDeniedError("denied"),
        errors.TimeoutError("some other modal timeout"),
        RetryTimeoutError(errors.ServiceError("deadline exceeded")),
        GRPCError(grpclib.Status.UNAVAILABLE, "unavailable"),
        StreamTerminatedError("connection lost"),
        ProtocolError("bad frame"),
        ConnectionRefusedError("refused"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_poll_modal_cannot_answer_makes_the_executor_unavailable(
    error: Exception, fake_modal: FakeModal, backend: ModalBackend
):
    call_id = started_call(backend)
    fake_modal.script(call_id, Raises(error))

    with pytest.raises(ExecutorUnavailable) as unavailable:
        backend.poll(call_id)

    assert unavailable.value.__cause__ is error


def test_a_poll_that_hangs_is_given_up_after_the_deadline(fake_modal: FakeModal, backend: ModalBackend):
    call_id = started_call(backend)
    fake_modal.script(call_id, Hangs())
    started = time.monotonic()

    with pytest.raises(ExecutorUnavailable, match="did not answer poll within 0.2 s"):
        backend.poll(call_id)

    assert time.monotonic() - started < SHORT_DEADLINE + 0.5


# Cancelling


def test_cancel_asks_modal_to_cancel_the_call_and_poll_then_reads_terminated(
    fake_modal: FakeModal, backend: ModalBackend
):
    call_id = started_call(backend)

    backend.cancel(call_id)

    [cancel] = fake_modal.calls_to("FunctionCall.cancel")
    assert (cancel.target, cancel.args, cancel.kwargs) == (call_id, (), {"terminate_containers": False})
    state = backend.poll(call_id)
    assert (state.status, state.message) == (CallStatus.TERMINATED, "Modal stopped the call.")


def test_cancelling_a_call_modal_does_not_know_is_nothing_to_do(fake_modal: FakeModal, backend: ModalBackend):
    backend.cancel("fc-never-spawned")

    assert len(fake_modal.calls_to("FunctionCall.cancel")) == 1


@pytest.mark.parametrize(
    "error",
    [errors.ConnectionError("could not connect"), errors.AuthError("Token missing"), ConnectionResetError("reset")],
    ids=lambda error: type(error).__name__,
)
def test_a_cancel_modal_cannot_confirm_makes_the_executor_unavailable(
    error: Exception, fake_modal: FakeModal, backend: ModalBackend
):
    call_id = started_call(backend)
    fake_modal.next_cancel = Raises(error)

    with pytest.raises(ExecutorUnavailable):
        backend.cancel(call_id)


def test_a_cancel_that_hangs_is_given_up_after_the_deadline(fake_modal: FakeModal, backend: ModalBackend):
    call_id = started_call(backend)
    fake_modal.next_cancel = Hangs()

    with pytest.raises(ExecutorUnavailable, match="did not answer cancel within 0.2 s"):
        backend.cancel(call_id)


# The fake against the real SDK


def test_the_default_modal_module_is_the_real_sdk():
    assert ModalBackend().modal is modal


def parameters_after_self(callable_object: Callable) -> list[tuple[str, inspect._ParameterKind, object]]:
    """
    Names, kinds and defaults, without a leading self/cls and without annotations (the real ones name SDK types).

    The public modal objects are synchronicity wrappers; `inspect.signature` follows their `__wrapped__` to the
    `_Function`/`_FunctionCall` originals in modal._functions, so the real parameters come through (a lost
    signature would show as `(*args, **kwargs)` and fail here). `FunctionCall.from_id` is a partial over the
    unbound classmethod, hence its leading `cls`.
    """
    parameters = list(inspect.signature(callable_object).parameters.values())
    if parameters and parameters[0].name in ("self", "cls"):
        parameters = parameters[1:]
    return [(parameter.name, parameter.kind, parameter.default) for parameter in parameters]


@pytest.mark.parametrize(
    ("fake_method", "real_method", "original_method"),
    [
        (FakeFunction.from_name, modal.Function.from_name, _Function.from_name),
        (FakeFunction.spawn, modal.Function.spawn, _Function.spawn),
        (FakeFunctionCall.from_id, modal.FunctionCall.from_id, _FunctionCall.from_id),
        (FakeFunctionCall.get, modal.FunctionCall.get, _FunctionCall.get),
        (FakeFunctionCall.cancel, modal.FunctionCall.cancel, _FunctionCall.cancel),
    ],
    ids=["Function.from_name", "Function.spawn", "FunctionCall.from_id", "FunctionCall.get", "FunctionCall.cancel"],
)
def test_the_fake_has_the_real_signature(fake_method: Callable, real_method: Callable, original_method: Callable):
    assert parameters_after_self(real_method) == parameters_after_self(original_method)
    assert parameters_after_self(fake_method) == parameters_after_self(real_method)


def test_the_real_function_call_has_an_object_id_property():
    assert isinstance(inspect.getattr_static(modal.FunctionCall, "object_id"), property)
    assert isinstance(inspect.getattr_static(FakeFunctionCall, "object_id"), property)

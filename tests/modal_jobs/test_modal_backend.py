"""
ModalBackend through the real `modal` client (1.6.4), talking gRPC to a local stand-in of
Modal's control plane (modal_server.py): the SDK's own requests, retries, status mapping
and result decoding run; only the server's answers are scripted.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest
from grpclib import Status
from modal.exception import InputCancellation

from exports.executor import GuardedExecutor
from modal_jobs.executors import CallState, CallStatus, ExecutorUnavailable, SpawnRefused
from modal_jobs.kinds import KINDS
from modal_jobs.modal_backend import FUNCTION_NAMES, ModalBackend, ModalClient
from modal_jobs.records import ExportResult
from testing_support.fake_modal import FakeModal

from .modal_server import ModalServer

APP_NAME = "exports"
DEADLINE = 2.0
PAYLOAD = {"schema_version": 1, "job_id": "job-1", "kind": "overlay"}


def guarded(backend: GuardedExecutor, *, deadline_seconds: float = DEADLINE, pool_size: int = 8) -> GuardedExecutor:
    """The backend as the web app calls it: deadlines are the GuardedExecutor's (no breaker here)."""
    return GuardedExecutor(
        backend, deadline_seconds=deadline_seconds, failure_threshold=10**6, cooldown_seconds=0, pool_size=pool_size
    )


@pytest.fixture
def backend(modal_server: ModalServer) -> GuardedExecutor:
    modal_server.deploy(APP_NAME, *FUNCTION_NAMES.values())
    return guarded(ModalBackend(app_name=APP_NAME))


def started_call(backend: GuardedExecutor) -> str:
    return backend.spawn("overlay", PAYLOAD)


# Spawning


def test_there_is_a_function_name_for_every_export_kind():
    assert set(FUNCTION_NAMES) == set(KINDS)
    assert len(set(FUNCTION_NAMES.values())) == len(FUNCTION_NAMES)


def test_the_default_requests_go_through_the_real_modal_client():
    assert isinstance(ModalBackend().requests, ModalClient)


@pytest.mark.parametrize("kind", sorted(FUNCTION_NAMES))
def test_it_spawns_the_function_named_for_the_kind_with_the_payload(
    kind: str, modal_server: ModalServer, backend: GuardedExecutor
):
    call_id = backend.spawn(kind, PAYLOAD)

    call = modal_server.calls[call_id]
    assert call_id.startswith("fc-")
    assert (call.app_name, call.function_name) == (APP_NAME, FUNCTION_NAMES[kind])
    assert (call.args, call.kwargs) == ((PAYLOAD,), {})


def test_it_refuses_an_unknown_kind_without_asking_modal(modal_server: ModalServer, backend: GuardedExecutor):
    with pytest.raises(SpawnRefused, match="Unknown export kind"):
        backend.spawn("slideshow", PAYLOAD)

    assert modal_server.received == []


def test_a_function_that_is_not_deployed_is_a_refused_spawn(modal_server: ModalServer):
    backend = guarded(ModalBackend(app_name="not-deployed"))

    with pytest.raises(SpawnRefused, match="NotFoundError"):
        backend.spawn("overlay", PAYLOAD)

    assert modal_server.calls == {}


@pytest.mark.parametrize(
    ("status", "error_name"),
    [
        (Status.INVALID_ARGUMENT, "InvalidError"),
        (Status.FAILED_PRECONDITION, "ConflictError"),
        (Status.RESOURCE_EXHAUSTED, "ResourceExhaustedError"),
    ],
    ids=lambda value: getattr(value, "name", value),
)
def test_a_request_modal_rejects_is_a_refused_spawn(
    status: Status, error_name: str, modal_server: ModalServer, backend: GuardedExecutor
):
    modal_server.fail_rpc("FunctionMap", status, "rejected")

    with pytest.raises(SpawnRefused, match=error_name):
        backend.spawn("overlay", PAYLOAD)


@pytest.mark.parametrize("status", [Status.UNAUTHENTICATED, Status.PERMISSION_DENIED, Status.UNAVAILABLE])
def test_a_spawn_that_may_have_started_makes_the_executor_unavailable(
    status: Status, modal_server: ModalServer, backend: GuardedExecutor
):
    """A lost reply may hide a started call; it is adopted later from the worker's record, never reported refused."""
    modal_server.fail_rpc("FunctionMap", status, "no")

    with pytest.raises(ExecutorUnavailable) as unavailable:
        backend.spawn("overlay", PAYLOAD)

    assert not isinstance(unavailable.value, SpawnRefused)


def test_a_spawn_that_hangs_is_given_up_after_the_deadline(modal_server: ModalServer, backend: GuardedExecutor):
    modal_server.hang_rpc("FunctionMap")
    started = time.monotonic()

    with pytest.raises(ExecutorUnavailable, match="did not answer spawn within 2.0 s"):
        backend.spawn("overlay", PAYLOAD)

    assert time.monotonic() - started < DEADLINE + 1


def test_a_cancel_arriving_while_a_spawn_waits_on_modal_reaches_the_calls_code(modal_server: ModalServer):
    """Inside a Modal container (a chunked export spawning its chunks) a cancel is InputCancellation, raised
    wherever the code is. Before, spawn turned it into ExecutorUnavailable and the cancelled export failed."""
    modal_server.deploy(APP_NAME, *FUNCTION_NAMES.values())
    modal_server.hang_rpc("FunctionMap")

    def cancel_input(signal_number, frame):
        raise InputCancellation("Input was cancelled by user")

    def cancel_once_the_spawn_waits():
        modal_server.wait_for_requests("FunctionMap")
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)  # to the thread the spawn blocks

    signal.signal(signal.SIGUSR1, cancel_input)
    try:
        threading.Thread(target=cancel_once_the_spawn_waits, daemon=True).start()
        with pytest.raises(InputCancellation):
            ModalBackend(app_name=APP_NAME).spawn("overlay", PAYLOAD)
    finally:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        modal_server.release_rpc("FunctionMap")


def test_a_spawn_queued_behind_a_hung_call_is_dropped_not_started_late(modal_server: ModalServer):
    modal_server.deploy(APP_NAME, *FUNCTION_NAMES.values())
    backend = guarded(ModalBackend(app_name=APP_NAME), deadline_seconds=0.5, pool_size=1)
    modal_server.hang_rpc("FunctionGetOutputs")
    with pytest.raises(ExecutorUnavailable):
        backend.poll("fc-hung")  # occupies the only thread

    with pytest.raises(ExecutorUnavailable, match="did not answer spawn"):
        backend.spawn("overlay", PAYLOAD)
    modal_server.release_rpc("FunctionGetOutputs")
    backend._pool.shutdown(wait=True)

    assert modal_server.requests("FunctionMap") == []


# Polling: every shape of answer


def test_a_call_still_running_reads_as_running_without_waiting(modal_server: ModalServer, backend: GuardedExecutor):
    call_id = started_call(backend)
    started = time.monotonic()

    assert backend.poll(call_id) == CallState.running()
    assert time.monotonic() - started < 1
    [request] = modal_server.requests("FunctionGetOutputs")
    assert (request.function_call_id, request.timeout, request.clear_on_success) == (call_id, 0, False)


def test_a_successful_result_reads_as_succeeded(modal_server: ModalServer, backend: GuardedExecutor):
    call_id = started_call(backend)
    result = {"status": "success", "output_key": "exports/job-1/output.mp4", "duration": 12.5}
    modal_server.succeed(call_id, result)

    assert backend.poll(call_id) == CallState.succeeded(ExportResult.model_validate(result))


def test_the_workers_error_result_reads_as_failed_with_its_message(modal_server: ModalServer, backend: GuardedExecutor):
    call_id = started_call(backend)
    returned = {"status": "error", "message": "Clip 3 has no video stream.", "finished_at": "2026-11-25T17:13:35+00:00"}
    modal_server.succeed(call_id, returned)

    assert backend.poll(call_id) == CallState.failed(
        "Clip 3 has no video stream.", result=ExportResult.model_validate(returned)
    )


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (ValueError("bad params"), "The export raised ValueError: bad params"),
        # Each of these read wrong through FunctionCall.get(): running forever, unavailable forever, an escape.
        (TimeoutError("the bucket timed out"), "The export raised TimeoutError: the bucket timed out"),
        (ConnectionResetError(104, "reset"), "The export raised ConnectionResetError: [Errno 104] reset"),
        (SystemExit(3), "The export raised SystemExit: 3"),
        (KeyboardInterrupt(), "The export raised KeyboardInterrupt"),
    ],
    ids=lambda value: type(value).__name__,
)
def test_an_exception_raised_inside_the_function_is_a_failed_call_with_its_message(
    raised: BaseException, message: str, modal_server: ModalServer, backend: GuardedExecutor
):
    call_id = started_call(backend)
    modal_server.raise_in_call(call_id, raised)

    assert backend.poll(call_id) == CallState.failed(message)


def test_a_cancelled_call_reads_as_terminated(modal_server: ModalServer, backend: GuardedExecutor):
    call_id = started_call(backend)
    modal_server.terminate(call_id)

    assert backend.poll(call_id) == CallState(CallStatus.TERMINATED, message="Modal stopped the call.")


def test_the_functions_time_limit_reads_as_timed_out(modal_server: ModalServer, backend: GuardedExecutor):
    call_id = started_call(backend)
    modal_server.time_out(call_id, "Function timed out after 14400 s")

    assert backend.poll(call_id) == CallState(CallStatus.TIMED_OUT, message="Function timed out after 14400 s")


def test_an_internal_failure_in_modal_reads_as_failed(modal_server: ModalServer, backend: GuardedExecutor):
    call_id = started_call(backend)
    modal_server.internal_failure(call_id, "lost the input too many times")

    assert backend.poll(call_id) == CallState.failed("The export failed in Modal: lost the input too many times")


@pytest.mark.parametrize("detail", ["", "Image build failed"])
def test_a_container_that_never_started_reads_as_failed_not_terminated(
    detail: str, modal_server: ModalServer, backend: GuardedExecutor
):
    call_id = started_call(backend)
    modal_server.init_failure(call_id, detail)

    state = backend.poll(call_id)

    assert state == CallState.failed(f"The container could not start the export: {detail or 'no reason given'}")


def test_an_outcome_modal_no_longer_keeps_reads_as_expired(modal_server: ModalServer, backend: GuardedExecutor):
    call_id = started_call(backend)
    modal_server.expire(call_id)

    assert backend.poll(call_id).status is CallStatus.EXPIRED


def test_an_id_modal_never_heard_of_reads_as_unknown(backend: GuardedExecutor):
    assert backend.poll("fc-never-spawned").status is CallStatus.UNKNOWN


@pytest.mark.parametrize("status", [Status.UNAUTHENTICATED, Status.PERMISSION_DENIED, Status.UNAVAILABLE])
def test_a_poll_modal_cannot_answer_makes_the_executor_unavailable(
    status: Status, modal_server: ModalServer, backend: GuardedExecutor
):
    call_id = started_call(backend)
    modal_server.fail_rpc("FunctionGetOutputs", status, "no")

    with pytest.raises(ExecutorUnavailable):
        backend.poll(call_id)


def test_a_poll_when_the_server_is_gone_makes_the_executor_unavailable(
    modal_server: ModalServer, backend: GuardedExecutor
):
    call_id = started_call(backend)
    modal_server.stop()

    with pytest.raises(ExecutorUnavailable):
        backend.poll(call_id)


def test_a_poll_that_hangs_is_given_up_after_the_deadline(modal_server: ModalServer, backend: GuardedExecutor):
    call_id = started_call(backend)
    modal_server.hang_rpc("FunctionGetOutputs")
    started = time.monotonic()

    with pytest.raises(ExecutorUnavailable, match="did not answer poll within 2.0 s"):
        backend.poll(call_id)

    assert time.monotonic() - started < DEADLINE + 1


# Cancelling


def test_cancel_terminates_the_container_and_poll_then_reads_terminated(
    modal_server: ModalServer, backend: GuardedExecutor
):
    """Without terminate_containers the container only gets InputCancellation and the render may go on."""
    call_id = started_call(backend)

    backend.cancel(call_id)

    [request] = modal_server.requests("FunctionCallCancel")
    assert (request.function_call_id, request.terminate_containers) == (call_id, True)
    assert backend.poll(call_id).status is CallStatus.TERMINATED


def test_cancelling_a_call_modal_does_not_know_is_nothing_to_do(modal_server: ModalServer, backend: GuardedExecutor):
    backend.cancel("fc-never-spawned")

    assert len(modal_server.requests("FunctionCallCancel")) == 1


def test_a_cancel_modal_cannot_confirm_makes_the_executor_unavailable(
    modal_server: ModalServer, backend: GuardedExecutor
):
    call_id = started_call(backend)
    modal_server.fail_rpc("FunctionCallCancel", Status.UNAUTHENTICATED, "token missing")

    with pytest.raises(ExecutorUnavailable, match="did not confirm the cancel"):
        backend.cancel(call_id)


def test_a_cancel_that_hangs_is_given_up_after_the_deadline(modal_server: ModalServer, backend: GuardedExecutor):
    call_id = started_call(backend)
    modal_server.hang_rpc("FunctionCallCancel")

    with pytest.raises(ExecutorUnavailable, match="did not answer cancel within 2.0 s"):
        backend.cancel(call_id)


# Logs


def test_logs_are_the_lines_the_call_printed(modal_server: ModalServer, backend: GuardedExecutor):
    call_id = started_call(backend)
    modal_server.add_log(call_id, "Export job-1 (overlay) started\n")
    modal_server.add_log(call_id, "Export job-1 succeeded\n")

    assert backend.logs(call_id) == "Export job-1 (overlay) started\nExport job-1 succeeded\n"


def test_logs_modal_cannot_give_make_the_executor_unavailable(modal_server: ModalServer, backend: GuardedExecutor):
    call_id = started_call(backend)
    modal_server.hang_rpc("AppFetchLogs")

    with pytest.raises(ExecutorUnavailable, match="did not answer logs within 2.0 s"):
        backend.logs(call_id)


# The benchmarks' fake against the stand-in


def scenario_states(backend: GuardedExecutor, finish) -> list[CallState]:
    """Spawn, poll, let `finish` decide the call, poll, cancel, poll; and an unknown id."""
    call_id = backend.spawn("overlay", PAYLOAD)
    states = [backend.poll(call_id)]
    finish(call_id)
    states.append(backend.poll(call_id))
    backend.cancel(call_id)
    states += [backend.poll(call_id), backend.poll("fc-never-spawned")]
    return [CallState(state.status, state.result, state.message.replace(call_id, "ID")) for state in states]


@pytest.mark.parametrize("finished", [False, True], ids=["cancelled while running", "succeeded"])
def test_the_benchmarks_fake_answers_as_the_stand_in_does(
    finished: bool, modal_server: ModalServer, backend: GuardedExecutor
):
    result = {"status": "success", "output_key": "exports/job-1/output.mp4"}
    fake = FakeModal()
    fake.deploy(APP_NAME, *FUNCTION_NAMES.values())
    faked = guarded(ModalBackend(app_name=APP_NAME, requests=fake))

    real_states = scenario_states(backend, lambda call_id: finished and modal_server.succeed(call_id, result))
    fake_states = scenario_states(faked, lambda call_id: finished and fake.succeed(call_id, result))

    assert fake_states == real_states

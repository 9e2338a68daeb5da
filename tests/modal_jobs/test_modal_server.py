"""
The Modal stand-in (modal_server.py) against the REAL `modal` client: what the SDK sends,
and which exception each scripted outcome becomes on the client side (modal 1.6.4).
"""

import socket
import threading
import time
import traceback
from collections.abc import Iterator

import modal
import pytest
from grpclib import Status

from .modal_server import ModalServer, running_modal_server

APP_NAME = "exports-worker"
FUNCTION_NAME = "render"
PAYLOAD = {"schema_version": 1, "kind": "highlights", "params": {"seconds": 30}, "inputs": {"7": {"key": "a.mp4"}}}
errors = modal.exception


@pytest.fixture
def server(monkeypatch, tmp_path) -> Iterator[ModalServer]:
    with running_modal_server(monkeypatch, tmp_path) as server:
        server.deploy(APP_NAME, FUNCTION_NAME)
        yield server


def spawn(payload=PAYLOAD) -> str:
    return modal.Function.from_name(APP_NAME, FUNCTION_NAME).spawn(payload).object_id


def get(call_id: str):
    return modal.FunctionCall.from_id(call_id).get(timeout=0)


def frame_names(error: BaseException) -> list[str]:
    return [frame.f_code.co_name for frame, _ in traceback.walk_tb(error.__traceback__)]


def test_spawn_returns_a_call_id_and_the_server_receives_the_payload(server: ModalServer):
    call_id = spawn()

    assert call_id.startswith("fc-")
    call = server.calls[call_id]
    assert (call.app_name, call.function_name) == (APP_NAME, FUNCTION_NAME)
    assert (call.args, call.kwargs) == ((PAYLOAD,), {})
    assert [rpc.name for rpc in server.received] == ["FunctionGet", "FunctionMap"]


def test_a_large_payload_is_sent_inline(server: ModalServer):
    """Above the SDK's default 8 KiB a spawn payload would go to blob storage, which the stand-in does not have."""
    payload = {"inputs": {str(clip): {"key": f"projects/1/clips/{clip:060d}.mp4"} for clip in range(500)}}

    assert server.calls[spawn(payload)].args == (payload,)


@pytest.mark.parametrize(("app_name", "function_name"), [("not-deployed", FUNCTION_NAME), (APP_NAME, "missing")])
def test_spawning_what_is_not_deployed_raises_not_found(server: ModalServer, app_name: str, function_name: str):
    with pytest.raises(errors.NotFoundError, match="Lookup failed"):
        modal.Function.from_name(app_name, function_name).spawn(PAYLOAD)
    assert server.calls == {}


def test_get_on_a_running_call_raises_the_builtin_timeout_error_at_once(server: ModalServer):
    call_id = spawn()

    started = time.monotonic()
    with pytest.raises(TimeoutError) as raised:
        get(call_id)

    assert time.monotonic() - started < 2
    assert type(raised.value) is TimeoutError and raised.value.args == ()
    assert frame_names(raised.value)[-2:] == ["get", "poll_function"]


def test_get_long_polls_until_the_call_finishes(server: ModalServer):
    call_id = spawn()
    threading.Timer(0.3, server.succeed, (call_id, "done")).start()

    assert modal.FunctionCall.from_id(call_id).get(timeout=5) == "done"


@pytest.mark.parametrize(
    ("outcome", "expected_type", "expected_args"),
    [
        (lambda server, call_id: server.raise_in_call(call_id, ValueError("bad")), ValueError, ("bad",)),
        (lambda server, call_id: server.raise_in_call(call_id, SystemExit(3)), SystemExit, (3,)),
        (lambda server, call_id: server.raise_in_call(call_id, TimeoutError("bucket")), TimeoutError, ("bucket",)),
        (
            lambda server, call_id: server.raise_in_call(call_id, ConnectionResetError("reset")),
            ConnectionResetError,
            ("reset",),
        ),
        (lambda server, call_id: server.terminate(call_id), errors.RemoteError, ("",)),
        (lambda server, call_id: server.time_out(call_id), errors.FunctionTimeoutError, ("Function call timed out",)),
        (lambda server, call_id: server.internal_failure(call_id), errors.InternalFailure, ("Internal failure",)),
        (lambda server, call_id: server.init_failure(call_id), errors.RemoteError, ("",)),
        (lambda server, call_id: server.expire(call_id), errors.OutputExpiredError, ()),
    ],
    ids=[
        "value-error",
        "system-exit",
        "remote-timeout-error",
        "connection-reset",
        "terminated",
        "timed-out",
        "internal-failure",
        "init-failure",
        "expired",
    ],
)
def test_each_outcome_becomes_the_exception_the_sdk_raises(server: ModalServer, outcome, expected_type, expected_args):
    call_id = spawn()
    outcome(server, call_id)

    with pytest.raises(BaseException) as raised:
        get(call_id)

    assert type(raised.value) is expected_type
    assert raised.value.args == expected_args


def test_succeed_returns_the_value(server: ModalServer):
    call_id = spawn()
    server.succeed(call_id, {"output_key": "exports/1.mp4", "seconds": 12.5})

    assert get(call_id) == {"output_key": "exports/1.mp4", "seconds": 12.5}


def test_a_remote_exception_carries_the_remote_traceback(server: ModalServer):
    """Unlike the no-output TimeoutError, a remote one passes through `_process_result` and ends in a frame
    attributed to the container, `<ta-...>:path`, which is how the SDK tells remote frames apart."""
    call_id = spawn()
    server.raise_in_call(call_id, TimeoutError("bucket"))

    with pytest.raises(TimeoutError) as raised:
        get(call_id)

    assert frame_names(raised.value)[-4:] == ["get", "poll_function", "_process_result", "_raised"]
    *_, (remote_frame, _) = traceback.walk_tb(raised.value.__traceback__)
    assert remote_frame.f_code.co_filename.startswith(f"<{server.calls[call_id].task_id}>:")


@pytest.mark.parametrize("action", ["get", "cancel", "logs"])
def test_an_unknown_call_id_is_not_found(server: ModalServer, action: str):
    call = modal.FunctionCall.from_id("fc-00000000000000000000000000")

    with pytest.raises(errors.NotFoundError):
        if action == "get":
            call.get(timeout=0)
        elif action == "cancel":
            call.cancel()
        else:
            list(call.logs.tail(entries=10))


def test_cancel_with_terminate_containers_terminates_the_call_at_once(server: ModalServer):
    call_id = spawn()

    modal.FunctionCall.from_id(call_id).cancel(terminate_containers=True)

    [request] = server.requests("FunctionCallCancel")
    assert (request.function_call_id, request.terminate_containers) == (call_id, True)
    assert server.calls[call_id].cancellations == [True]
    with pytest.raises(errors.RemoteError):
        get(call_id)


def test_cancel_without_terminate_containers_runs_on_until_user_code_unwinds(server: ModalServer):
    call_id = spawn()

    modal.FunctionCall.from_id(call_id).cancel()

    [request] = server.requests("FunctionCallCancel")
    assert request.terminate_containers is False
    with pytest.raises(TimeoutError):
        get(call_id)
    server.unwind(call_id)
    with pytest.raises(errors.RemoteError):
        get(call_id)


def test_unwinding_a_call_that_was_not_cancelled_is_a_test_mistake(server: ModalServer):
    with pytest.raises(ValueError, match="not cancelled"):
        server.unwind(spawn())


def test_logs_tail_returns_the_lines_added(server: ModalServer):
    call_id = spawn()
    other_call_id = spawn()
    server.add_log(call_id, "probing clips\n")
    server.add_log(other_call_id, "another call\n")
    server.add_log(call_id, "rendering 1/3\n")

    entries = list(modal.FunctionCall.from_id(call_id).logs.tail(entries=10))

    assert [entry.message for entry in entries] == ["probing clips\n", "rendering 1/3\n"]
    assert {entry.source for entry in entries} == {"stdout"}
    # The SDK hydrates the call for its app id, then widens its lookback while it has fewer lines than asked for.
    assert [rpc.name for rpc in server.received[-5:]] == ["FunctionCallFromId"] + ["AppFetchLogs"] * 4


def test_logs_tail_returns_only_the_last_entries(server: ModalServer):
    call_id = spawn()
    for line in range(5):
        server.add_log(call_id, f"line {line}\n")

    entries = list(modal.FunctionCall.from_id(call_id).logs.tail(entries=2))

    assert [entry.message for entry in entries] == ["line 3\n", "line 4\n"]


def test_a_hung_get_outputs_keeps_get_from_returning_until_released(server: ModalServer):
    call_id = spawn()
    server.succeed(call_id, "late")
    server.hang_rpc("FunctionGetOutputs")
    outcome = {}
    waiter = threading.Thread(target=lambda: outcome.update(value=get(call_id)))

    waiter.start()
    server.wait_for_requests("FunctionGetOutputs")
    waiter.join(timeout=0.5)
    assert waiter.is_alive()

    server.release_rpc("FunctionGetOutputs")
    waiter.join(timeout=5)
    assert outcome == {"value": "late"}


def test_stopping_the_server_ends_a_hung_get_with_a_connection_error(server: ModalServer):
    call_id = spawn()
    server.hang_rpc("FunctionGetOutputs")
    outcome = {}

    def wait_for_output():
        try:
            get(call_id)
        except errors.ConnectionError as error:
            outcome["error"] = error

    waiter = threading.Thread(target=wait_for_output)
    waiter.start()
    server.wait_for_requests("FunctionGetOutputs")
    server.stop()
    waiter.join(timeout=5)

    assert isinstance(outcome["error"], errors.ConnectionError)


def test_the_sdk_retries_unavailable_and_then_gives_up(server: ModalServer):
    call_id = spawn()
    server.succeed(call_id, "ok")
    server.fail_rpc("FunctionGetOutputs", Status.UNAVAILABLE, "try later", times=2)

    assert get(call_id) == "ok"
    assert len(server.requests("FunctionGetOutputs")) == 3

    server.fail_rpc("FunctionGetOutputs", Status.UNAVAILABLE, "try later")
    started = time.monotonic()
    with pytest.raises(errors.ServiceError, match="try later"):
        get(call_id)
    assert len(server.requests("FunctionGetOutputs")) == 3 + 4  # the first attempt and 3 retries
    assert 0.6 < time.monotonic() - started < 2  # backoff 0.1 + 0.2 + 0.4 s


def test_a_status_the_sdk_does_not_retry_is_raised_at_once(server: ModalServer):
    server.fail_rpc("FunctionMap", Status.RESOURCE_EXHAUSTED, "backlog full")

    with pytest.raises(errors.ResourceExhaustedError, match="backlog full"):
        spawn()
    assert len(server.requests("FunctionMap")) == 1


def test_an_rpc_the_stand_in_does_not_implement_is_unimplemented(server: ModalServer):
    with pytest.raises(errors.UnimplementedError):
        modal.FunctionCall.from_id(spawn()).get_call_graph()
    assert server.requests("FunctionGetCallGraph")


def test_the_client_connects_to_the_stand_in_only(server: ModalServer, monkeypatch):
    addresses = []
    connect = socket.socket.connect

    def recording_connect(sock, address):
        addresses.append(address)
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    call_id = spawn()
    server.succeed(call_id, 1)
    get(call_id)
    list(modal.FunctionCall.from_id(call_id).logs.tail(entries=1))

    assert addresses == [("127.0.0.1", server.port)]

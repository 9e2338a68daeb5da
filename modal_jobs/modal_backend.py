"""
The Modal executor: each export is a FunctionCall of the deployed `exports` app (see modal_app.py).

Written against modal 1.6.4 (pinned); imports no Django. `ModalClient` makes the four
requests through the real SDK; `ModalBackend` turns their answers into the executor
boundary's, and never lets an exception other than KeyboardInterrupt or InputCancellation out of
spawn, poll, cancel or logs. It sets no deadlines: an unreachable Modal server can keep an SDK call
busy (retrying) for over a minute, and the web app's GuardedExecutor (exports/executor.py)
gives up on any backend call after its deadline.

The rule for reading a call: whatever is decoded from the call's own output (a value,
an exception the function raised, the status Modal recorded) says how the call ended;
only the SDK's transport and control-plane errors mean "could not tell". That is why
`poll` does not use `FunctionCall.get()`: `get` raises the function's exceptions as
themselves, so a remote built-in `TimeoutError` looks like "no output yet", a remote
`OSError` like a lost connection, a remote `SystemExit` escapes, and a container that
never started looks like a cancel.
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

from .executors import CallState, CallStatus, ExecutorUnavailable, SpawnRefused
from .kinds import CHUNK_KIND, KINDS

logger = logging.getLogger(__name__)

# Export kind -> name of its function in the deployed app. The one place both
# this backend and modal_app.py read, so the two cannot disagree.
FUNCTION_NAMES: dict[str, str] = {kind: f"export_{kind}" for kind in KINDS}
# Export kind -> the function its chunks render on (chunks.py), spawned by the export's own call: the kind's
# resources again, so a chunk's frames come from the encoder its export's would (NVENC for framing_ai).
CHUNK_FUNCTION_NAMES: dict[str, str] = {kind: f"chunk_{kind}" for kind in KINDS}
LOG_TAIL_ENTRIES = 200
CALL_ID_PATTERN = re.compile(r"^fc-[A-Za-z0-9]{1,64}$")


def describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class OutputStatus(enum.StrEnum):
    """What Modal holds for a call's one input: no output yet or any more, or the status its output carries."""

    RUNNING = "running"  # no output, the input unfinished (queued, starting or running)
    EXPIRED = "expired"  # no output and no unfinished input: Modal no longer keeps the outcome
    SUCCESS = "success"
    FAILURE = "failure"  # the function raised (or its result could not be decoded here)
    TERMINATED = "terminated"  # stopped by a signal from outside: a cancel
    KILLED = "killed"  # stopped by the platform: out of memory, evicted, idle timeout
    TIMEOUT = "timeout"  # the function's time limit
    INIT_FAILURE = "init_failure"  # the container never got to run the function
    INTERNAL_FAILURE = "internal_failure"  # Modal's machinery failed (after its own retries)


@dataclass(frozen=True)
class CallOutput:
    status: OutputStatus
    value: Any = None  # what the function returned (SUCCESS)
    message: str = ""  # the exception the function raised, described, or the text Modal recorded


class ModalRequests(Protocol):
    """The requests ModalBackend makes; `ModalClient` makes them of Modal, the bench's fake of a dict."""

    def spawn(self, app_name: str, function_name: str, payload: dict[str, Any]) -> str: ...

    def output(self, call_id: str) -> CallOutput: ...

    def cancel(self, call_id: str) -> None: ...

    def logs(self, call_id: str, entries: int) -> str: ...


class ModalClient:
    """The requests, through the real `modal` client (the Modal token and server come from its config)."""

    def __init__(self):
        import modal  # lazily: only a process that uses Modal pays for importing it
        from modal._utils.async_utils import synchronizer

        self.modal = modal
        self._read_output = synchronizer.create_blocking(read_output)

    def spawn(self, app_name: str, function_name: str, payload: dict[str, Any]) -> str:
        return self.modal.Function.from_name(app_name, function_name).spawn(payload).object_id

    def output(self, call_id: str) -> CallOutput:
        return self._read_output(call_id)

    def cancel(self, call_id: str) -> None:
        # Without terminate_containers Modal only raises InputCancellation in the container and reports the call
        # terminated once user code has unwound; terminating the container stops the render (and the billing).
        self.modal.FunctionCall.from_id(call_id).cancel(terminate_containers=True)

    def logs(self, call_id: str, entries: int) -> str:
        return "".join(entry.message for entry in self.modal.FunctionCall.from_id(call_id).logs.tail(entries))


async def read_output(call_id: str) -> CallOutput:
    """
    Ask for the call's output once, without waiting, and decode it with the SDK's own decoder.

    This is `FunctionCall.get(timeout=0)` (modal/_functions.py `poll_function`) taken apart at the one
    seam that matters: the output is fetched first (a failure there is the transport's), large results
    are downloaded before decoding, and only then is `_process_result` run, so anything it raises was
    decoded from the call's own output. The status is read from the output, not guessed from exceptions.
    These are SDK internals (`_Invocation`, `_process_result`, the client's stub), which is why modal is
    pinned; the stand-in tests run this code against the real client and catch an upgrade that moves them.
    """
    from modal._functions import _Invocation
    from modal._utils.blob_utils import blob_download
    from modal._utils.function_utils import _process_result
    from modal.client import _Client
    from modal_proto import api_pb2

    client = await _Client.from_env()
    response = await _Invocation(client._stub, call_id, client).pop_function_call_outputs(
        index=0, timeout=0, clear_on_success=False
    )
    if not response.outputs:
        return CallOutput(OutputStatus.RUNNING if response.num_unfinished_inputs else OutputStatus.EXPIRED)
    output = response.outputs[0]
    result = api_pb2.GenericResult()
    result.CopyFrom(output.result)
    if result.WhichOneof("data_oneof") == "data_blob_id":
        result.data = await blob_download(result.data_blob_id, client._stub)
    status = _output_status(result.status)
    has_data_to_decode = status is OutputStatus.SUCCESS or (status is OutputStatus.FAILURE and bool(result.data))
    if not has_data_to_decode:
        return CallOutput(status, message=result.exception)
    try:
        value = await _process_result(result, output.data_format, client._stub, client)
    except BaseException as error:  # decoded from the output, SystemExit and the like included
        return CallOutput(OutputStatus.FAILURE, message=describe(error))
    if status is OutputStatus.FAILURE:  # a failure whose data decoded to something that is not an exception
        return CallOutput(OutputStatus.FAILURE, message=result.exception or f"Modal recorded a failure: {value!r}")
    return CallOutput(OutputStatus.SUCCESS, value=value)


def _output_status(status: int) -> OutputStatus:
    from modal_proto import api_pb2

    generic = api_pb2.GenericResult
    return {
        generic.GENERIC_STATUS_SUCCESS: OutputStatus.SUCCESS,
        generic.GENERIC_STATUS_FAILURE: OutputStatus.FAILURE,
        generic.GENERIC_STATUS_TERMINATED: OutputStatus.TERMINATED,
        generic.GENERIC_STATUS_TIMEOUT: OutputStatus.TIMEOUT,
        generic.GENERIC_STATUS_INIT_FAILURE: OutputStatus.INIT_FAILURE,
        generic.GENERIC_STATUS_INTERNAL_FAILURE: OutputStatus.INTERNAL_FAILURE,
        generic.GENERIC_STATUS_IDLE_TIMEOUT: OutputStatus.KILLED,
        generic.GENERIC_STATUS_MEMORY_MANAGER_EVICTION: OutputStatus.KILLED,
        generic.GENERIC_STATUS_MEMORY_THRASHING_EVICTION: OutputStatus.KILLED,
        generic.GENERIC_STATUS_KERNEL_OOM_KILL: OutputStatus.KILLED,
    }.get(status, OutputStatus.FAILURE)  # a status newer than this SDK: the call ended, and not well


def state_of(output: CallOutput) -> CallState:
    """The executor boundary's reading of a call's output: one line per status."""
    message = output.message
    match output.status:
        case OutputStatus.RUNNING:
            return CallState.running()
        case OutputStatus.EXPIRED:
            return CallState(CallStatus.EXPIRED, message="Modal no longer keeps the outcome of this call.")
        case OutputStatus.SUCCESS:
            return CallState.from_result(output.value)
        case OutputStatus.TERMINATED:
            return CallState(CallStatus.TERMINATED, message=message or "Modal stopped the call.")
        case OutputStatus.KILLED:
            return CallState(CallStatus.TERMINATED, message=f"Modal stopped the container: {message or 'no reason'}")
        case OutputStatus.TIMEOUT:
            return CallState(CallStatus.TIMED_OUT, message=message or "The export hit its time limit.")
        case OutputStatus.INIT_FAILURE:
            return CallState.failed(f"The container could not start the export: {message or 'no reason given'}")
        case OutputStatus.INTERNAL_FAILURE:
            return CallState.failed(f"The export failed in Modal: {message or 'internal failure'}")
    return CallState.failed(f"The export raised {message}" if message else "The export failed.")


def function_for(kind: str, payload: dict[str, Any]) -> str | None:
    """The deployed function a call of this kind runs on; None for a kind the app does not have."""
    if kind != CHUNK_KIND:
        return FUNCTION_NAMES.get(kind)
    export = payload.get("export")
    return CHUNK_FUNCTION_NAMES.get(export.get("kind")) if isinstance(export, dict) else None


class ModalBackend:
    name = "modal"

    def __init__(self, *, app_name: str = "exports", requests: ModalRequests | None = None):
        import modal.exception

        self.errors = modal.exception
        # Not about the call, and not ours to turn into "could not tell": inside a Modal container (a chunked
        # export's call spawning its chunks) a cancel arrives as InputCancellation and a preemption as
        # KeyboardInterrupt, raised wherever the call's code is, an SDK request included.
        self.passed_through = (ExecutorUnavailable, KeyboardInterrupt, modal.exception.InputCancellation)
        self.requests = requests if requests is not None else ModalClient()
        self.app_name = app_name

    # The protocol

    def is_call_id(self, call_id: str) -> bool:
        return bool(CALL_ID_PATTERN.match(call_id))

    def spawn(self, kind: str, payload: dict[str, Any]) -> str:
        function_name = function_for(kind, payload)
        if function_name is None:
            # SpawnRefused rather than ValueError: it is a definite refusal (nothing runs), and it is
            # what LocalBackend raises and the only spawn error besides ExecutorUnavailable that callers handle.
            raise SpawnRefused(f"Unknown export kind {kind!r}.")
        errors = self.errors
        # A definite refusal: Modal answered, and the answer is that no call was created.
        # - NotFoundError: the app or function is not deployed (raised by the FunctionGet lookup, before FunctionMap).
        # - InvalidError (ConflictError included: FAILED_PRECONDITION, ABORTED): the server rejected the request.
        # - ResourceExhaustedError: the server would not queue the call (rate or backlog limit); better to tell
        #   the user now than to wait for a job that never started to go stale.
        # - SerializationError: the payload could not be encoded; raised locally before anything is sent.
        # Not refusals: AuthError and PermissionDeniedError (the operator's credentials, they hit every call and
        # should open the breaker, not fail exports one by one), and every transport or deadline problem, since
        # a spawn whose reply was lost may have started: the call id is adopted later from the worker's record.
        refusals = (errors.NotFoundError, errors.InvalidError, errors.ResourceExhaustedError, errors.SerializationError)
        try:
            return self.requests.spawn(self.app_name, function_name, payload)
        except refusals as error:
            raise SpawnRefused(f"Modal refused to start {self.app_name}/{function_name}: {describe(error)}") from error
        except self.passed_through:
            raise
        except BaseException as error:
            message = f"Modal did not confirm the spawn of {function_name}: {describe(error)}"
            raise ExecutorUnavailable(message) from error

    def poll(self, call_id: str) -> CallState:
        try:
            output = self.requests.output(call_id)
        except self.errors.NotFoundError:
            # Also a grpclib.GRPCError, which otherwise means "could not tell": check it first.
            return CallState(CallStatus.UNKNOWN, message=f"Modal does not know the call {call_id}.")
        except self.passed_through:
            raise
        except BaseException as error:
            # Nothing was decoded from the call's output: AuthError, ConnectionError, ServiceError (UNAVAILABLE,
            # DEADLINE_EXCEEDED, ...), the SDK's own retry deadline, and errors that escape its retries unconverted.
            raise ExecutorUnavailable(f"Modal could not tell the state of {call_id}: {describe(error)}") from error
        state = state_of(output)
        if output.status is OutputStatus.FAILURE:
            logger.warning("Modal call %s failed: %s", call_id, output.message)
        return state

    def cancel(self, call_id: str) -> None:
        try:
            self.requests.cancel(call_id)
        except self.errors.NotFoundError:
            return  # Modal does not know the call: there is nothing to cancel
        except self.passed_through:
            raise
        except BaseException as error:
            raise ExecutorUnavailable(f"Modal did not confirm the cancel of {call_id}: {describe(error)}") from error

    def logs(self, call_id: str) -> str:
        try:
            return self.requests.logs(call_id, LOG_TAIL_ENTRIES)
        except self.passed_through:
            raise
        except BaseException as error:
            raise ExecutorUnavailable(f"Modal did not give the logs of {call_id}: {describe(error)}") from error

"""
The Modal executor: each export is a FunctionCall of the deployed `exports` app (see modal_app.py).

Written against modal 1.6.4; imports no Django. Every SDK call runs on a small
thread pool of this backend and is given up after `deadline_seconds`, because an
unreachable Modal server can keep a call busy (retrying) for over a minute.

How the SDK's answers map to the executor boundary is decided in `spawn`,
`_state_from_error` and `cancel`; the reasons are next to each decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from types import ModuleType
from typing import Any, TypeVar

from .executors import CallState, CallStatus, ExecutorUnavailable, SpawnRefused

logger = logging.getLogger(__name__)

# Export kind -> name of its function in the deployed app. The one place both
# this backend and modal_app.py read, so the two cannot disagree.
FUNCTION_NAMES: dict[str, str] = {
    "multi_clip": "export_multi_clip",
    "framing_ai": "export_framing_ai",
    "overlay": "export_overlay",
}

Result = TypeVar("Result")


def describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class ModalBackend:
    name = "modal"

    def __init__(
        self,
        *,
        app_name: str = "exports",
        deadline_seconds: float = 5.0,
        modal_module: ModuleType | Any | None = None,
        pool_size: int = 8,
    ):
        if modal_module is None:
            import modal as modal_module  # lazily: only a process that uses Modal pays for importing it
        self.modal = modal_module
        self.app_name = app_name
        self.deadline_seconds = deadline_seconds
        self._pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="modal-call")

    # The protocol

    def spawn(self, kind: str, payload: dict[str, Any]) -> str:
        function_name = FUNCTION_NAMES.get(kind)
        if function_name is None:
            # SpawnRefused rather than ValueError: it is a definite refusal (nothing runs), and it is
            # what LocalBackend raises and the only spawn error besides ExecutorUnavailable that callers handle.
            raise SpawnRefused(f"Unknown export kind {kind!r}.")

        def spawn_call() -> str:
            function = self.modal.Function.from_name(self.app_name, function_name)
            return function.spawn(payload).object_id

        errors = self.modal.exception
        # A definite refusal: Modal answered, and the answer is that no call was created.
        # - NotFoundError: the app or function is not deployed (raised by the FunctionGet lookup, before FunctionMap).
        # - InvalidError (ConflictError included: FAILED_PRECONDITION, ABORTED): the server rejected the request.
        # - ResourceExhaustedError: the server would not queue the call (rate or backlog limit); better to tell
        #   the user now than to wait for a job that never started to go stale.
        # - SerializationError: the payload could not be encoded; raised locally before anything is sent.
        # Not refusals: AuthError and PermissionDeniedError (the operator's credentials, they hit every call and
        # should open the breaker, not fail exports one by one), and every transport or deadline problem, since
        # a spawn whose reply was lost may have started: the call id is adopted later from the worker's record.
        # RequestSizeError is not raised on this path in 1.6.4 (large payloads are uploaded as blobs).
        refusals = (errors.NotFoundError, errors.InvalidError, errors.ResourceExhaustedError, errors.SerializationError)
        try:
            return self._within_deadline("spawn", spawn_call)
        except refusals as error:
            raise SpawnRefused(f"Modal refused to start {self.app_name}/{function_name}: {describe(error)}") from error
        except ExecutorUnavailable:
            raise
        except Exception as error:
            message = f"Modal did not confirm the spawn of {function_name}: {describe(error)}"
            raise ExecutorUnavailable(message) from error

    def poll(self, call_id: str) -> CallState:
        def poll_call() -> Any:
            # timeout=0 asks once and does not wait; `get` leaves the output in place (clear_on_success=False).
            return self.modal.FunctionCall.from_id(call_id).get(timeout=0)

        try:
            result = self._within_deadline("poll", poll_call)
        except ExecutorUnavailable:
            raise
        except Exception as error:
            return self._state_from_error(call_id, error)
        return CallState.from_result(result)

    def cancel(self, call_id: str) -> None:
        # Without terminate_containers the container gets InputCancellation at its next heartbeat, so the
        # worker can stop ffmpeg and clean up; poll() reads TERMINATED once Modal has recorded it.
        try:
            self._within_deadline("cancel", lambda: self.modal.FunctionCall.from_id(call_id).cancel())
        except self.modal.exception.NotFoundError:
            return  # Modal does not know the call: there is nothing to cancel
        except ExecutorUnavailable:
            raise
        except Exception as error:
            raise ExecutorUnavailable(f"Modal did not confirm the cancel of {call_id}: {describe(error)}") from error

    # Reading FunctionCall.get()

    def _state_from_error(self, call_id: str, error: Exception) -> CallState:
        """
        Read what `FunctionCall.get(timeout=0)` raised (modal 1.6.4, `poll_function` and `_process_result`).

        The order matters: NotFoundError is also a grpclib.GRPCError, OutputExpiredError and
        FunctionTimeoutError are both modal TimeoutErrors, the built-in TimeoutError is an OSError,
        and every class below is a modal.exception.Error, which as a whole means "could not tell".
        """
        errors = self.modal.exception
        if isinstance(error, TimeoutError):
            # The built-in one: poll_function found no output yet and inputs are unfinished (queued or running).
            return CallState.running()
        if isinstance(error, errors.NotFoundError):
            return CallState(CallStatus.UNKNOWN, message=f"Modal does not know the call {call_id}.")
        if isinstance(error, errors.OutputExpiredError):
            # No output and no unfinished input: it finished, but Modal no longer keeps the outcome.
            return CallState(CallStatus.EXPIRED, message="Modal no longer keeps the outcome of this call.")
        if isinstance(error, errors.FunctionTimeoutError):
            return CallState(CallStatus.TIMED_OUT, message=str(error) or "The export hit its time limit.")
        if isinstance(error, errors.RemoteError):
            # A non-success output without a pickled exception: cancelled (GENERIC_STATUS_TERMINATED), or killed by
            # the platform (out of memory, eviction, a crash); only the message tells which.
            return CallState(CallStatus.TERMINATED, message=str(error) or "Modal stopped the call.")
        if isinstance(error, (errors.InternalFailure, errors.ExecutionError, errors.DeserializationError)):
            # It finished and failed in Modal's machinery (InternalFailure after Modal's own retries), or its
            # outcome cannot be read here (ExecutionError and DeserializationError both say so); asking again
            # gives the same answer, so treating it as "could not tell" would leave the job waiting forever.
            return CallState.failed(f"The export failed in Modal: {describe(error)}")
        if isinstance(error, (errors.Error, *transport_errors())):
            # AuthError, ConnectionError, ClientClosed, ServiceError (UNAVAILABLE, DEADLINE_EXCEEDED, ...),
            # InternalError, the SDK's own retry deadline, and errors that escape its retries unconverted.
            raise ExecutorUnavailable(f"Modal could not tell the state of {call_id}: {describe(error)}") from error
        # Anything else was raised inside the function and re-raised here as itself (modal_app's functions
        # return an error dict instead of raising, so this is a container that failed to start the code).
        logger.warning("Modal call %s raised %s", call_id, describe(error), exc_info=error)
        return CallState.failed(f"The export raised {describe(error)}")

    # Deadlines

    def _within_deadline(self, operation: str, call: Callable[[], Result]) -> Result:
        """
        Run one SDK call on the pool and wait at most deadline_seconds for it (the call itself may go on).

        `wait` rather than `future.result(timeout=...)`: the latter raises the built-in TimeoutError,
        which is also what `get` raises for a call still running.
        """
        future = self._pool.submit(call)
        done, _ = wait([future], timeout=self.deadline_seconds)
        if not done:
            # A call still queued behind hung ones is dropped, so a spawn cannot start late behind the caller's back.
            future.cancel()
            raise ExecutorUnavailable(f"Modal did not answer {operation} within {self.deadline_seconds:g} s.")
        return future.result()


def transport_errors() -> tuple[type[BaseException], ...]:
    """Transport errors the SDK's retry loop can let through as themselves (modal/_utils/grpc_utils.py)."""
    from grpclib.exceptions import GRPCError, StreamTerminatedError
    from h2.exceptions import ProtocolError

    return (GRPCError, StreamTerminatedError, ProtocolError, OSError)

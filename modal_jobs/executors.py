"""
The executor boundary: what the web app may ask of whatever runs the exports.

Two implementations: `ModalBackend` (a Modal FunctionCall per export) and
`LocalBackend` (a detached worker process per export, the embedded default).
Both promise the same thing: a spawned call outlives the web process that
spawned it, and anyone holding its id can poll or cancel it later.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .records import ExportResult


class CallStatus(enum.StrEnum):
    RUNNING = "running"  # queued, starting or running
    SUCCEEDED = "succeeded"  # the worker returned {"status": "success", ...}
    FAILED = "failed"  # the worker returned an error, raised, or died
    TERMINATED = "terminated"  # stopped from outside (a cancel, or killed by the platform)
    TIMED_OUT = "timed_out"  # the function's own time limit ended it
    EXPIRED = "expired"  # finished too long ago: the executor no longer keeps its outcome
    UNKNOWN = "unknown"  # the executor has never heard of this id


@dataclass(frozen=True)
class CallState:
    status: CallStatus
    result: ExportResult | None = field(default=None)
    message: str = ""
    # A running call still waiting for a worker, and how many calls are ahead of it, where the executor knows
    # (the local executor's queue does; Modal does not say).
    queued_ahead: int | None = None

    @classmethod
    def running(cls) -> CallState:
        return cls(CallStatus.RUNNING)

    @classmethod
    def succeeded(cls, result: ExportResult) -> CallState:
        return cls(CallStatus.SUCCEEDED, result=result)

    @classmethod
    def failed(cls, message: str, *, result: ExportResult | None = None) -> CallState:
        """A failed call; `result` is the worker's own error result when it returned one (it has its finish time)."""
        return cls(CallStatus.FAILED, result=result, message=message)

    @classmethod
    def from_result(cls, returned: Any) -> CallState:
        """Read what a call returned: the worker's ExportResult, as a dict, success or an expected failure."""
        from .records import parse_result  # here: the local executor's supervisor imports this module, not pydantic

        result = parse_result(returned) if isinstance(returned, dict) else None
        if result is None:
            return cls.failed(f"The worker returned something unexpected: {str(returned)[:200]}")
        return cls.of(result)

    @classmethod
    def of(cls, result: ExportResult) -> CallState:
        """The state of a call that ended with the worker's result: success, or an expected failure."""
        if result.succeeded:
            return cls.succeeded(result)
        return cls.failed(result.message or "The export failed.", result=result)


class ExecutorUnavailable(Exception):
    """The executor could not be reached or could not tell; nothing about the call is known."""


class SpawnRefused(Exception):
    """The executor definitely refused to start the call (nothing is running)."""


class ExecutorBackend(Protocol):
    name: str

    def is_call_id(self, call_id: str) -> bool:
        """Whether `call_id` has the form of this backend's ids (each backend owns its format)."""

    def spawn(self, kind: str, payload: dict[str, Any]) -> str:
        """Start a call and return its id; raise SpawnRefused or ExecutorUnavailable."""

    def poll(self, call_id: str) -> CallState:
        """Return the call's state without waiting; raise ExecutorUnavailable when it cannot tell."""

    def cancel(self, call_id: str) -> None:
        """Ask the executor to stop the call; poll() reports TERMINATED once it has."""

    def logs(self, call_id: str) -> str:
        """The last lines the call printed, oldest first; raise ExecutorUnavailable when they cannot be read."""

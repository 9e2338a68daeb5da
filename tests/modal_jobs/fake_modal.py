"""
A fake of exactly the Modal SDK surface ModalBackend uses, for its tests.

`FakeModal()` stands in for the `modal` module: `Function.from_name(...).spawn(...)`,
`FunctionCall.from_id(...)`, `.get(timeout=...)`, `.cancel(...)`, `.object_id`, and
`exception`, which is the real `modal.exception` module, so the backend is tested
against the real exception classes. The method signatures are the real ones
(test_modal_backend.py checks them). What each call id does on `get` is scripted;
every SDK call is recorded.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import modal.exception

HANG_LIMIT_SECONDS = 30.0  # a hung call gives up by itself if a test forgets to release it


@dataclass(frozen=True)
class Recorded:
    method: str  # e.g. "FunctionCall.get"
    target: str  # the function name or call id it was called on
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


class Running:
    """`get` finds no output yet: the SDK raises the built-in TimeoutError."""


@dataclass(frozen=True)
class Returns:
    value: Any


@dataclass(frozen=True)
class Raises:
    error: BaseException


class Hangs:
    """The SDK call does not answer until the test releases it (an unreachable server)."""


Outcome = Running | Returns | Raises | Hangs


class FakeModal:
    exception = modal.exception

    def __init__(self, *, deployed: dict[str, set[str]] | None = None):
        self.deployed = deployed if deployed is not None else {}  # app name -> its function names
        self.outcomes: dict[str, Outcome] = {}  # call id -> what `get` does
        self.next_spawn: Outcome | None = None  # what the next `spawn` does, instead of starting a call
        self.next_cancel: Outcome | None = None
        self.recorded: list[Recorded] = []
        self.released = threading.Event()
        self._lock = threading.Lock()
        fake = self
        # Per-instance subclasses, so the classmethods reach this fake and keep the base classes' signatures.
        self.Function = type("Function", (FakeFunction,), {"fake": fake})
        self.FunctionCall = type("FunctionCall", (FakeFunctionCall,), {"fake": fake})

    # Scripting

    def deploy(self, app_name: str, *function_names: str) -> None:
        self.deployed.setdefault(app_name, set()).update(function_names)

    def script(self, call_id: str, outcome: Outcome) -> None:
        self.outcomes[call_id] = outcome

    def release(self) -> None:
        """Let every hung call return (with a connection error, as a hung gRPC call eventually does)."""
        self.released.set()

    # Reading what happened

    def calls_to(self, method: str) -> list[Recorded]:
        with self._lock:
            return [recorded for recorded in self.recorded if recorded.method == method]

    # Used by the fake SDK classes

    def record(self, method: str, target: str, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.recorded.append(Recorded(method, target, args, kwargs))

    def play(self, outcome: Outcome) -> Any:
        if isinstance(outcome, Running):
            raise TimeoutError()  # as modal/_functions.py poll_function does
        if isinstance(outcome, Raises):
            raise outcome.error
        if isinstance(outcome, Hangs):
            self.released.wait(HANG_LIMIT_SECONDS)
            raise modal.exception.ConnectionError("the fake server was released")
        return outcome.value


class FakeFunction:
    fake: FakeModal

    def __init__(self, app_name: str, name: str):
        self.app_name = app_name
        self.name = name

    @classmethod
    def from_name(
        cls,
        app_name: str,
        name: str,
        *,
        version: int | None = None,
        environment_name: str | None = None,
        client: Any | None = None,
    ) -> FakeFunction:
        # Lazy, as the real one: the lookup happens on first use.
        cls.fake.record("Function.from_name", name, app_name, name)
        return cls(app_name, name)

    def spawn(self, *args: Any, **kwargs: Any) -> FakeFunctionCall:
        fake = self.fake
        fake.record("Function.spawn", self.name, *args, **kwargs)
        if self.name not in fake.deployed.get(self.app_name, set()):
            raise modal.exception.NotFoundError(
                f"Lookup failed for Function '{self.name}' from the '{self.app_name}' app: App not found."
            )
        if fake.next_spawn is not None:
            outcome, fake.next_spawn = fake.next_spawn, None
            fake.play(outcome)
        call_id = f"fc-{uuid.uuid4().hex[:24]}"
        fake.outcomes[call_id] = Running()
        return fake.FunctionCall(call_id)


class FakeFunctionCall:
    fake: FakeModal

    def __init__(self, call_id: str):
        self._call_id = call_id

    @property
    def object_id(self) -> str:
        return self._call_id

    @classmethod
    def from_id(cls, function_call_id: str, client: Any | None = None) -> FakeFunctionCall:
        # Lazy, as the real one: an unknown id is only found out on get or cancel.
        cls.fake.record("FunctionCall.from_id", function_call_id, function_call_id)
        return cls(function_call_id)

    def get(self, timeout: float | None = None, *, index: int = 0) -> Any:
        fake = self.fake
        fake.record("FunctionCall.get", self._call_id, timeout=timeout, index=index)
        outcome = fake.outcomes.get(self._call_id)
        if outcome is None:
            raise modal.exception.NotFoundError(f"Function call {self._call_id} not found")
        return fake.play(outcome)

    def cancel(self, terminate_containers: bool = False) -> None:
        fake = self.fake
        fake.record("FunctionCall.cancel", self._call_id, terminate_containers=terminate_containers)
        if fake.next_cancel is not None:
            outcome, fake.next_cancel = fake.next_cancel, None
            fake.play(outcome)
            return
        if self._call_id not in fake.outcomes:
            raise modal.exception.NotFoundError(f"Function call {self._call_id} not found")
        # What get() raises once the container has stopped: a TERMINATED output carries no exception.
        fake.outcomes[self._call_id] = Raises(modal.exception.RemoteError(""))

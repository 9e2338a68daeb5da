"""
A fake of the four requests ModalBackend makes of Modal (`ModalRequests`), for the benchmarks.

The backend's tests run the real `modal` client against a local stand-in of Modal's control
plane (tests/modal_jobs/modal_server.py); this fake answers from a dict instead, so a benchmark
can hold ten thousand calls at no cost. tests/modal_jobs/test_modal_backend.py checks that it
answers as the stand-in does.
"""

from __future__ import annotations

import uuid
from typing import Any

import modal.exception

from modal_jobs.modal_backend import CallOutput, OutputStatus


class FakeModal:
    def __init__(self, *, deployed: dict[str, set[str]] | None = None):
        self.deployed = deployed if deployed is not None else {}  # app name -> its function names
        self.outputs: dict[str, CallOutput] = {}  # call id -> what Modal holds for it
        self.spawned: dict[str, Any] = {}  # call id -> the payload it was spawned with

    def deploy(self, app_name: str, *function_names: str) -> None:
        self.deployed.setdefault(app_name, set()).update(function_names)

    def running(self, call_id: str) -> None:
        self.outputs[call_id] = CallOutput(OutputStatus.RUNNING)

    def succeed(self, call_id: str, value: Any) -> None:
        self.outputs[call_id] = CallOutput(OutputStatus.SUCCESS, value=value)

    # ModalRequests

    def spawn(self, app_name: str, function_name: str, payload: dict[str, Any]) -> str:
        if function_name not in self.deployed.get(app_name, set()):
            raise modal.exception.NotFoundError(f"Lookup failed for Function '{function_name}' of '{app_name}'")
        call_id = f"fc-{uuid.uuid4().hex[:24]}"
        self.spawned[call_id] = payload
        self.running(call_id)
        return call_id

    def output(self, call_id: str) -> CallOutput:
        if call_id not in self.outputs:
            raise modal.exception.NotFoundError(f"Function call {call_id} not found")
        return self.outputs[call_id]

    def cancel(self, call_id: str) -> None:
        if call_id not in self.outputs:
            raise modal.exception.NotFoundError(f"Function call {call_id} not found")
        if self.outputs[call_id].status is OutputStatus.RUNNING:  # the container is terminated with the input
            self.outputs[call_id] = CallOutput(OutputStatus.TERMINATED)

    def logs(self, call_id: str, entries: int) -> str:
        self.output(call_id)
        return ""

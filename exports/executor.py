"""
The executor as the web app uses it: the backend the settings pick, every call
with a deadline, a per-request time budget, and a circuit breaker.

An executor that hangs must not hang the site. Calls run on a thread pool
of their own (never on the thread Channels uses for database_sync_to_async), so
a caller waits at most its deadline even when the call itself never returns
(an unreachable Modal server keeps an SDK call retrying for over a minute).
This is the only place deadlines live: the backends just make their calls.
After EXPORTS_BREAKER_FAILURES consecutive failures, calls fail fast for
EXPORTS_BREAKER_COOLDOWN_SECONDS; the first call after that is a trial.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

from django.conf import settings

from modal_jobs.executors import CallState, ExecutorBackend, ExecutorUnavailable, SpawnRefused

from .storage import worker_store_config

logger = logging.getLogger(__name__)


class Budget:
    """Seconds a request may still spend waiting for the executor."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    @classmethod
    def for_request(cls) -> Budget:
        """What one page, API request or socket tick may spend: EXPORTS_REQUEST_BUDGET_SECONDS."""
        return cls(settings.EXPORTS_REQUEST_BUDGET_SECONDS)

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


class BudgetExhausted(ExecutorUnavailable):
    """This request has spent its executor time; the next look will check."""


class CircuitOpen(ExecutorUnavailable):
    """Recent calls failed; not asking again until the cooldown ends."""


class GuardedExecutor:
    def __init__(
        self,
        backend: ExecutorBackend,
        *,
        deadline_seconds: float,
        failure_threshold: int,
        cooldown_seconds: float,
        pool_size: int = 8,
    ):
        self.backend = backend
        self.deadline_seconds = deadline_seconds
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="executor-call")
        self._lock = threading.Lock()
        self._consecutive_failures = 0
        self._open_until = 0.0

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def breaker_open(self) -> bool:
        return time.monotonic() < self._open_until

    def is_call_id(self, call_id: str) -> bool:
        return self.backend.is_call_id(call_id)

    def spawn(self, kind: str, payload: dict) -> str:
        return self._call("spawn", kind, payload, budget=None)

    def poll(self, call_id: str, *, budget: Budget | None = None) -> CallState:
        return self._call("poll", call_id, budget=budget)

    def poll_many(self, call_ids: list[str], *, budget: Budget | None = None) -> dict[str, CallState | Exception]:
        """
        Poll the calls at once, within one deadline; each id maps to its state or to the ExecutorUnavailable
        that stands in for it, so one slow call costs the others nothing.
        """
        answers: dict[str, CallState | Exception] = {}
        if not call_ids:
            return answers
        if self.breaker_open:
            error = CircuitOpen(f"The executor failed {self.failure_threshold} times in a row; retrying shortly.")
            return dict.fromkeys(call_ids, error)
        timeout = self.deadline_seconds if budget is None else min(self.deadline_seconds, budget.remaining())
        if timeout <= 0:
            return dict.fromkeys(call_ids, BudgetExhausted("No time left in this request for executor checks."))
        futures = {self._pool.submit(self.backend.poll, call_id): call_id for call_id in call_ids}
        done, late = wait(futures, timeout=timeout)
        failed = answered = 0
        for future, call_id in futures.items():
            if future in late:
                future.cancel()
                answers[call_id] = ExecutorUnavailable(f"The executor did not answer poll within {timeout:.1f} s.")
                failed += 1
                continue
            try:
                answers[call_id] = future.result()
                answered += 1
            except ExecutorUnavailable as error:
                answers[call_id] = error
                failed += 1
            except Exception as error:  # one call's unreadable state (a bug, a broken file) is not an outage
                answers[call_id] = unreadable_answer("poll", call_id, error)
        self._record_outcomes(failed=failed, answered=answered)
        return answers

    def cancel(self, call_id: str, *, budget: Budget | None = None) -> None:
        self._call("cancel", call_id, budget=budget)

    def logs(self, call_id: str, *, budget: Budget | None = None) -> str:
        # A logs service that fails says nothing about the calls: it does not count towards the breaker.
        return self._call("logs", call_id, budget=budget, counts_for_breaker=False)

    def _call(self, operation: str, *arguments, budget: Budget | None, counts_for_breaker: bool = True):
        if self.breaker_open:
            raise CircuitOpen(f"The executor failed {self.failure_threshold} times in a row; retrying shortly.")
        timeout = self.deadline_seconds if budget is None else min(self.deadline_seconds, budget.remaining())
        if timeout <= 0:
            raise BudgetExhausted("No time left in this request for executor checks.")
        future = self._pool.submit(getattr(self.backend, operation), *arguments)
        # wait(), not future.result(timeout=...): the latter's timeout is the built-in TimeoutError, which a
        # backend could raise too, and a deadline must not be mistaken for an answer (or the other way round).
        done, _ = wait([future], timeout=timeout)
        if not done:
            future.cancel()  # a call still queued behind hung ones must not start late
            if counts_for_breaker:
                self._record_outcomes(failed=1)
            raise ExecutorUnavailable(f"The executor did not answer {operation} within {timeout:.1f} s.")
        try:
            result = future.result()
        except ExecutorUnavailable:
            if counts_for_breaker:
                self._record_outcomes(failed=1)
            raise
        except SpawnRefused:
            raise
        except Exception as error:
            raise unreadable_answer(operation, arguments[0], error) from error
        if counts_for_breaker:
            self._record_outcomes(answered=1)
        return result

    def _record_outcomes(self, *, failed: int = 0, answered: int = 0) -> None:
        """Any answer closes the breaker's count; failures with no answer among them add up to opening it."""
        with self._lock:
            if answered:
                self._consecutive_failures = 0
                return
            self._consecutive_failures += failed
            if self._consecutive_failures >= self.failure_threshold:
                self._open_until = time.monotonic() + self.cooldown_seconds
                logger.warning("Executor circuit breaker open for %.1f s", self.cooldown_seconds)


def unreadable_answer(operation: str, call_id: str, error: Exception) -> ExecutorUnavailable:
    """
    A backend raised what it should not have (a bug, or a state file it cannot read): nothing is known about
    the call, as when the executor cannot be reached, but it says nothing of the executor as a whole, so it
    does not count towards the breaker.
    """
    logger.error("The executor's %s of %s raised %s", operation, call_id, error, exc_info=error)
    return ExecutorUnavailable(f"The executor's answer to {operation} could not be read: {type(error).__name__}")


def backend_from_settings() -> ExecutorBackend:
    """The backend EXPORTS_BACKEND names, built from the settings (the worker side never reads them)."""
    if settings.EXPORTS_BACKEND == "modal":
        from modal_jobs.modal_backend import ModalBackend

        return ModalBackend(app_name=settings.MODAL_APP_NAME)
    from modal_jobs.local_backend import LocalBackend

    return LocalBackend(
        root=settings.LOCAL_EXECUTOR_DIR,
        store_config=worker_store_config(),
        max_workers=settings.LOCAL_EXECUTOR_MAX_WORKERS,
        cores_per_worker=settings.LOCAL_EXECUTOR_CORES_PER_WORKER,
        time_limit_seconds=settings.LOCAL_EXECUTOR_TIME_LIMIT_SECONDS,
    )


_executor: GuardedExecutor | None = None
_executor_lock = threading.Lock()


def _guarded(backend: ExecutorBackend) -> GuardedExecutor:
    return GuardedExecutor(
        backend,
        deadline_seconds=settings.EXPORTS_EXECUTOR_DEADLINE_SECONDS,
        failure_threshold=settings.EXPORTS_BREAKER_FAILURES,
        cooldown_seconds=settings.EXPORTS_BREAKER_COOLDOWN_SECONDS,
        pool_size=settings.EXPORTS_EXECUTOR_CONCURRENCY,
    )


def get_executor() -> GuardedExecutor:
    """Return this process's guarded executor (one breaker per process)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = _guarded(backend_from_settings())
        return _executor


def use_backend(backend: ExecutorBackend | None) -> None:
    """Replace the process's executor (tests); None rebuilds it from settings on next use."""
    global _executor
    with _executor_lock:
        _executor = None if backend is None else _guarded(backend)

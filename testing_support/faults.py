"""
Thin wrappers around the real executor and store. FaultInjectingBackend: the
executor down, hanging, slow, or losing the reply to a spawn that did happen (and
every call counted). FailingReads: a store whose reads fail. CountingStore: a
store whose reads are counted.
"""

import threading
import time
from collections import Counter

from modal_jobs.executors import ExecutorUnavailable, SpawnRefused


class FaultInjectingBackend:
    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        # None, "down", "hang", "slow", "lose_spawn_reply", "refuse_spawn", or "rendezvous": each call waits
        # until `rendezvous` (a threading.Barrier) has all its parties, i.e. that many calls are in flight at once.
        self.fault: str | None = None
        self.delay_seconds = 0.0
        self.rendezvous: threading.Barrier | None = None
        self.calls = Counter()
        self._released = threading.Event()

    def release(self) -> None:
        """End every injected hang (so test teardown leaves no thread sleeping)."""
        self.fault = None
        self._released.set()

    def _inject(self, operation: str) -> None:
        self.calls[operation] += 1
        if self.fault == "down":
            raise ExecutorUnavailable("injected: the executor is down")
        if self.fault == "hang":
            self._released.wait(60)
            raise ExecutorUnavailable("injected: the executor hung for 60 s")
        if self.fault == "slow":
            time.sleep(self.delay_seconds)
        if self.fault == "rendezvous":
            try:
                self.rendezvous.wait(timeout=5)
            except threading.BrokenBarrierError:
                raise ExecutorUnavailable("injected: the calls did not arrive together") from None

    def is_call_id(self, call_id):
        return self.inner.is_call_id(call_id)

    def spawn(self, kind, payload):
        self._inject("spawn")
        if self.fault == "refuse_spawn":
            raise SpawnRefused("injected: the function is not deployed")
        call_id = self.inner.spawn(kind, payload)
        if self.fault == "lose_spawn_reply":
            raise ExecutorUnavailable("injected: the spawn happened but its reply was lost")
        return call_id

    def poll(self, call_id):
        self._inject("poll")
        return self.inner.poll(call_id)

    def cancel(self, call_id):
        self._inject("cancel")
        return self.inner.cancel(call_id)

    def logs(self, call_id):
        self._inject("logs")
        return self.inner.logs(call_id)


class FailingReads:
    """The real store, except that reading any key containing `part` raises `error` (a store bug or outage)."""

    def __init__(self, inner, part: str, error: Exception):
        self.inner, self.part, self.error = inner, part, error

    def read_bytes(self, key, **options):
        if self.part in key:
            raise self.error
        return self.inner.read_bytes(key, **options)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class CountingStore:
    """The real store, counting reads of the keys `counted` picks (every key unless told), from any thread."""

    def __init__(self, inner, counted=lambda key: True):
        self.inner, self.counted = inner, counted
        self.reads = 0
        self._lock = threading.Lock()

    def read_bytes(self, key, **options):
        if self.counted(key):
            with self._lock:
                self.reads += 1
        return self.inner.read_bytes(key, **options)

    def __getattr__(self, name):
        return getattr(self.inner, name)

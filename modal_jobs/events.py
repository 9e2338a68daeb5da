"""
Events from the worker to the backend: each progress record and the result, pushed as they are written.

The backend is otherwise blind between looks; an event is only a faster
delivery of a record the store already holds, so sending one never blocks or
fails the render. Progress events leave from a thread of their own that keeps
only the newest record (a slow backend skips records, it never slows the
render), each tried once with a short timeout. The final event, the result, is
retried a few times with backoff, then given up: the next look at the job
finds the same result in the store.

Every event is signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
`webhook-signature`) with the job's own secret, which came in the payload, so
a leaked payload can speak for its own job only. No Django: it runs in a bare
container.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from standardwebhooks import Webhook

from .records import ExportResult, ProgressRecord, WorkerEvent

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 2.0
FINAL_ATTEMPTS = 4
FINAL_BACKOFF_SECONDS = 0.5  # doubled after each failed attempt: 0.5, 1, 2 s
REPLAY = 409  # the backend has this message id already: an earlier attempt got through
RETRYABLE = {408, 425, 429}

Post = Callable[[str, bytes, dict[str, str], float], int]


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST the body; the HTTP status (an error status included), raising only when no answer came."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


class EventSender:
    def __init__(
        self,
        *,
        url: str,
        secret: str,
        job_id: str,
        timeout_seconds: float = TIMEOUT_SECONDS,
        final_attempts: int = FINAL_ATTEMPTS,
        final_backoff_seconds: float = FINAL_BACKOFF_SECONDS,
        send: Post = post,
    ):
        self.url = url
        self.job_id = job_id
        self.timeout_seconds = timeout_seconds
        self.final_attempts = final_attempts
        self.final_backoff_seconds = final_backoff_seconds
        self.send = send
        self._webhook = Webhook(secret)
        self._newest: ProgressRecord | None = None
        self._wake = threading.Condition()
        self._closed = False
        # Started by the first progress record: a sender that only delivers (the result, a bench) needs none.
        self._thread = threading.Thread(target=self._send_progress, name=f"events-{job_id}", daemon=True)

    def progress(self, record: ProgressRecord) -> None:
        """Queue the record, replacing any not sent yet; returns at once."""
        with self._wake:
            if self._closed:
                return
            self._newest = record
            self._wake.notify()
            if not self._thread.is_alive():
                self._thread.start()

    def finished(self, result: ExportResult) -> bool:
        """Send the result (after the last progress event); True once the backend took it. Never raises."""
        self.close()
        event = WorkerEvent(type="result", job_id=self.job_id, result=result)
        message_id = new_message_id()  # the same for every attempt: a retry of a delivered event is a replay
        backoff = self.final_backoff_seconds
        for attempt in range(1, self.final_attempts + 1):
            status = self.deliver(event, message_id)
            if status is not None and (200 <= status < 300 or status == REPLAY):
                return True
            if status is not None and 400 <= status < 500 and status not in RETRYABLE:
                break  # refused: asking again would be refused again
            if attempt < self.final_attempts:
                time.sleep(backoff)
                backoff *= 2
        logger.warning("The result event of %s was not taken; the store holds the result", self.job_id)
        return False

    def close(self) -> None:
        """Send the progress record still queued, if any, and stop the thread."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread.ident is not None:
            self._thread.join(timeout=self.timeout_seconds + 1)

    def _send_progress(self) -> None:
        while True:
            with self._wake:
                while self._newest is None and not self._closed:
                    self._wake.wait()
                record, self._newest = self._newest, None
                closed = self._closed
            if record is not None:
                self.deliver(WorkerEvent(type="progress", job_id=self.job_id, record=record), new_message_id())
            if closed:
                return

    def deliver(self, event: WorkerEvent, message_id: str) -> int | None:
        """One signed POST; the backend's HTTP status, or None when no answer came."""
        body = event.to_json()
        sent_at = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": self._webhook.sign(message_id, sent_at, body.decode()),
        }
        try:
            status = self.send(self.url, body, headers, self.timeout_seconds)
        except Exception as error:  # no answer: unreachable, timed out, reset
            logger.info("The %s event of %s was not delivered: %s", event.type, self.job_id, error)
            return None
        # 409 to a progress event: the job already shows this record or a newer one (a look stored it first).
        superseded = status == REPLAY and event.type == "progress"
        if not 200 <= status < 300 and not superseded:
            logger.info("The backend answered %d to the %s event of %s", status, event.type, self.job_id)
        return status


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"

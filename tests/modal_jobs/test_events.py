"""The worker's event sender against a real HTTP server on loopback: never in the render's way, the result retried."""

import json
import logging
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

from modal_jobs.events import EventSender
from modal_jobs.records import ExportResult, ProgressRecord, WorkerEvent

SECRET = "whsec_" + "c2VjcmV0LW9mLW9uZS1qb2ItZm9yLXRoZS10ZXN0cw=="


class Backend:
    """Records every request; answers each with the next of `statuses` (then 200); may hold requests back."""

    def __init__(self):
        self.requests: list[tuple[dict, dict]] = []
        self.statuses: list[int] = []
        self.release = threading.Event()
        self.release.set()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                backend.release.wait(10)
                headers = {name.lower(): value for name, value in self.headers.items()}
                Webhook(SECRET).verify(body, headers, json_parse=False)  # raises if not signed with the secret
                backend.requests.append((headers, json.loads(body)))
                self.send_response(backend.statuses.pop(0) if backend.statuses else 200)
                self.end_headers()

            def log_message(self, *arguments):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/exports/job-1/events/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, kind: str) -> list[tuple[dict, dict]]:
        return [(headers, body) for headers, body in self.requests if body["type"] == kind]


@pytest.fixture
def backend():
    backend = Backend()
    yield backend
    backend.release.set()
    backend.server.shutdown()


def sender(url, **options) -> EventSender:
    return EventSender(url=url, secret=SECRET, job_id="job-1", final_backoff_seconds=0.05, **options)


def record(percent: int) -> ProgressRecord:
    return ProgressRecord(percent=percent, stage="rendering", worker_time=datetime.now(UTC))


RESULT = ExportResult(status="success", output_key="exports/job-1/output.mp4", duration=1.0)


def test_a_slow_backend_gets_the_newest_record_and_never_holds_the_render_up(backend):
    backend.release.clear()  # the backend takes the first event and sits on it
    events = sender(backend.url)
    events.progress(record(1))
    for percent in range(2, 60):
        events.progress(record(percent))  # would block the render if sending were inline: it returns at once
    backend.release.set()

    assert events.finished(RESULT)
    sent = [body["record"]["percent"] for _, body in backend.events("progress")]
    assert sent[-1] == 59
    assert len(sent) <= 3, "records superseded while the backend was busy are skipped, not queued"
    assert backend.requests[-1][1]["type"] == "result"


def test_the_result_is_retried_with_the_same_id_until_the_backend_takes_it(backend):
    backend.statuses = [500, 503]
    assert sender(backend.url).finished(RESULT)

    results = backend.events("result")
    assert len(results) == 3
    assert len({headers["webhook-id"] for headers, _ in results}) == 1  # a retry of a delivered event is a replay
    assert results[-1][1]["result"]["output_key"] == "exports/job-1/output.mp4"


def test_a_result_the_backend_has_already_is_delivered(backend):
    backend.statuses = [409]
    assert sender(backend.url).finished(RESULT)
    assert len(backend.events("result")) == 1


def test_a_refused_result_is_not_asked_again(backend):
    backend.statuses = [401]
    assert not sender(backend.url).finished(RESULT)
    assert len(backend.events("result")) == 1


def test_no_backend_at_all_costs_a_few_quick_attempts_and_no_error():
    events = sender("http://127.0.0.1:9/nobody/", final_attempts=3)  # the discard port: nothing listens
    events.progress(record(5))
    assert events.finished(RESULT) is False


def test_a_sender_that_only_delivers_starts_no_thread(backend):
    """Before: every sender started its progress thread, so the bench started one per sender only to close it."""

    def senders_threads():
        return [thread for thread in threading.enumerate() if thread.name == "events-job-2"]

    events = EventSender(url=backend.url, secret=SECRET, job_id="job-2")
    assert events.deliver(WorkerEvent(type="result", job_id="job-2", result=RESULT), "msg_only") == 200
    assert senders_threads() == []

    events.progress(record(3))  # the first record starts it
    assert len(senders_threads()) == 1
    events.close()
    assert [body["record"]["percent"] for _, body in backend.events("progress")] == [3]


def test_a_progress_record_the_job_shows_already_is_not_logged_but_other_refusals_are(backend, caplog):
    """409 to progress means a look stored this record, or a newer one, first: before, every such event logged."""
    caplog.set_level(logging.INFO, logger="modal_jobs.events")
    backend.statuses = [409, 401]
    events = EventSender(url=backend.url, secret=SECRET, job_id="job-1")

    assert events.deliver(WorkerEvent(type="progress", job_id="job-1", record=record(4)), "msg_superseded") == 409
    assert events.deliver(WorkerEvent(type="progress", job_id="job-1", record=record(5)), "msg_refused") == 401

    logged = [entry.getMessage() for entry in caplog.records]
    assert logged == ["The backend answered 401 to the progress event of job-1"]

"""
Chunked exports on Modal, through the real `modal` client against the stand-in of its control plane
(modal_server.py), the store through moto's S3: the export's body (modal_app.run_in_modal) spawns a call of
its kind's chunk function for each chunk and waits for them through ModalBackend.

The test plays Modal's containers. The export's runs in this thread, where Modal runs user code and raises
its InputCancellation (SIGUSR1) and KeyboardInterrupt (SIGINT, a preemption). Each chunk call the stand-in
receives is run by the chunk function's own body (modal_app.run_chunk_in_modal) in a thread of its own,
and what it returns becomes the call's output, as a container would report it.
"""

import signal
import threading
import time
from pathlib import Path

import av
import pytest
from modal.exception import InputCancellation

from modal_jobs import modal_app
from modal_jobs.modal_backend import CHUNK_FUNCTION_NAMES, FUNCTION_NAMES
from modal_jobs.records import job_key, parse_progress
from modal_jobs.store import S3Store

from ..processes import wait_for
from .conftest import detailed_payload
from .modal_server import Call, ModalServer

STOP_LIMIT_SECONDS = 3.0
CHUNKS = 4  # detailed_payload: 8 s in chunks of 2 s


class ChunkContainers:
    """Runs each chunk call the stand-in receives, as Modal would in a container; `lose` chunk indexes lose
    their first call's container (the call fails) without running it."""

    def __init__(self, server: ModalServer, *, lose: frozenset[int] = frozenset()):
        self.server = server
        self.lose = set(lose)
        self.runs: dict[str, threading.Thread] = {}
        self._stopped = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "ChunkContainers":
        self._watcher.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopped.set()
        self._watcher.join()

    def calls(self) -> list[Call]:
        return [call for call in list(self.server.calls.values()) if call.function_name.startswith("chunk_")]

    def _watch(self) -> None:
        while not self._stopped.wait(0.05):
            for call in self.calls():
                if call.call_id not in self.runs:
                    self.runs[call.call_id] = threading.Thread(target=self._run, args=(call,), daemon=True)
                    self.runs[call.call_id].start()

    def _run(self, call: Call) -> None:
        index = call.args[0]["chunk"]["index"]
        if index in self.lose:
            self.lose.discard(index)
            self.server.raise_in_call(call.call_id, RuntimeError("the container was lost"))
            return
        value = modal_app.run_chunk_in_modal(call.args[0])
        if call.running:  # a call cancelled with terminate_containers reads terminated already
            self.server.succeed(call.call_id, value)

    def running(self) -> list[str]:
        return [call_id for call_id, thread in self.runs.items() if thread.is_alive()]


@pytest.fixture
def bucket(s3_environment, monkeypatch) -> S3Store:
    """The bucket the Modal secret's AWS_* variables name, in this process's environment as in a container's."""
    for name, value in s3_environment.items():
        monkeypatch.setenv(name, value)
    return S3Store.from_environment()


@pytest.fixture
def modal_export(modal_server, bucket, store, detailed_clip, monkeypatch) -> dict:
    """A chunked export on the deployed app, its input in the bucket, x264's slowest preset: seconds a chunk."""
    modal_server.deploy(modal_app.APP_NAME, *FUNCTION_NAMES.values(), *CHUNK_FUNCTION_NAMES.values())
    payload = detailed_payload(store, detailed_clip, monkeypatch)
    for entry in payload["inputs"].values():
        bucket.upload_file(entry["key"], store.path(entry["key"]))
    monkeypatch.setattr(modal_app.modal, "current_function_call_id", lambda: "fc-EXPORT")
    return payload


@pytest.fixture
def sigint_raises_keyboard_interrupt():
    """
    SIGINT as a Modal container's Python has it: KeyboardInterrupt, raised in the call's code (a preemption).

    A test process may have been started with SIGINT ignored (a background job of a non-interactive shell, as
    CI may run `make test`), and Python then leaves it ignored: the preemption would never arrive.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def interrupt_when(condition, signal_number: int) -> threading.Thread:
    """Signal this process (its main thread, where the export runs) once `condition` holds."""

    def wait_and_signal() -> None:
        wait_for(condition, timeout=120, what="the moment to interrupt")
        signal.raise_signal(signal_number)

    thread = threading.Thread(target=wait_and_signal, daemon=True)
    thread.start()
    return thread


def all_rendering(containers: ChunkContainers, bucket: S3Store, job_id: str) -> bool:
    """Every chunk's container is running, and the export's record names every chunk call."""
    record = parse_progress(bucket.read_bytes(job_key(job_id, "progress.json")) or b"{}")
    named = sum(bool(chunk.call_id) for chunk in record.chunks) if record else 0
    return len(containers.running()) == named == CHUNKS


def output_frames(bucket: S3Store, key: str, folder: Path) -> int:
    bucket.download_file(key, folder / "output.mp4")
    with av.open(str(folder / "output.mp4")) as container:
        return sum(1 for _ in container.decode(video=0))


def kept_chunks(bucket: S3Store, job_id: str) -> list[str]:
    return [key for key in bucket.list_keys(job_key(job_id, "chunks/")) if key.endswith(".mp4")]


def test_an_export_spawns_its_kinds_chunk_function_once_per_chunk_and_joins_what_the_calls_kept(
    modal_server, modal_export, bucket, tmp_path
):
    with ChunkContainers(modal_server) as containers:
        result = modal_app.export_multi_clip.local(modal_export)

    assert result["status"] == "success", result
    calls = containers.calls()
    assert {call.function_name for call in calls} == {CHUNK_FUNCTION_NAMES["multi_clip"]}
    assert sorted(call.args[0]["chunk"]["index"] for call in calls) == list(range(CHUNKS))
    assert output_frames(bucket, result["output_key"], tmp_path) == 240
    record = parse_progress(bucket.read_bytes(job_key(modal_export["job_id"], "progress.json")))
    assert {chunk.call_id for chunk in record.chunks} == {call.call_id for call in calls}
    assert {chunk.state for chunk in record.chunks} == {"rendered"}


def test_a_chunk_whose_container_is_lost_is_spawned_once_more_and_the_export_succeeds(
    modal_server, modal_export, bucket, tmp_path
):
    with ChunkContainers(modal_server, lose=frozenset({1})) as containers:
        result = modal_app.export_multi_clip.local(modal_export)

    assert result["status"] == "success", result
    spawned = sorted(call.args[0]["chunk"]["index"] for call in containers.calls())
    assert spawned == [0, 1, 1, 2, 3]
    assert output_frames(bucket, result["output_key"], tmp_path) == 240


def test_a_cancelled_export_cancels_every_chunk_call_it_spawned_and_no_chunk_renders_on(
    modal_server, modal_export, bucket
):
    """Modal does not cancel a call's children: before, every chunk rendered on to the end, billed."""

    def cancel_input(signal_number, frame):
        raise InputCancellation("Input was cancelled by user")

    signal.signal(signal.SIGUSR1, cancel_input)
    try:
        with ChunkContainers(modal_server) as containers:
            # Once its record names them (a call whose spawn the cancel cuts short has only the stop marker).
            interrupt_when(lambda: all_rendering(containers, bucket, modal_export["job_id"]), signal.SIGUSR1)
            with pytest.raises(InputCancellation):
                modal_app.export_multi_clip.local(modal_export)
            cancelled_at = time.monotonic()
            running = {call.call_id for call in containers.calls()}
            wait_for(lambda: not containers.running(), timeout=30, what="every chunk's render to end")
            stopped_after = time.monotonic() - cancelled_at
    finally:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)

    cancels = modal_server.requests("FunctionCallCancel")
    assert {request.function_call_id for request in cancels} == running
    assert all(request.terminate_containers for request in cancels)
    assert stopped_after < STOP_LIMIT_SECONDS
    assert kept_chunks(bucket, modal_export["job_id"]) == []


def test_a_preempted_export_leaves_its_chunks_rendering_and_its_rerun_adopts_them(
    modal_server, modal_export, bucket, tmp_path, sigint_raises_keyboard_interrupt
):
    """Modal re-runs a preempted input under the same call id: before, the stop written on the way out failed
    every chunk, and a re-run spawned each chunk again."""
    with ChunkContainers(modal_server) as containers:
        # Once its record names them: a call spawned in the instant before a preemption is spawned again.
        interrupt_when(lambda: all_rendering(containers, bucket, modal_export["job_id"]), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            modal_app.export_multi_clip.local(modal_export)
        assert len(containers.running()) == CHUNKS  # nothing stopped them

        result = modal_app.export_multi_clip.local(modal_export)

    assert result["status"] == "success", result
    assert modal_server.requests("FunctionCallCancel") == []
    assert sorted(call.args[0]["chunk"]["index"] for call in containers.calls()) == list(range(CHUNKS))
    assert output_frames(bucket, result["output_key"], tmp_path) == 240

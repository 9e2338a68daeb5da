"""
The local executor keeps Modal's promises with real processes: calls outlive their
spawner, are pollable and cancellable by id, honour a time limit and a concurrency cap,
and the queue drains with nobody watching.
"""

import json
import os
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest

from modal_jobs.executors import CallStatus, SpawnRefused
from modal_jobs.local_backend import LocalBackend
from modal_jobs.media import generate_test_clip, probe

from ..processes import command_names, group_members, kill_all_workers, wait_for
from .conftest import add_input, make_payload

ROOT = Path(__file__).resolve().parents[2]


def poll_until_final(backend, call_id, timeout=120.0):
    return wait_for(
        lambda: (state := backend.poll(call_id)).status is not CallStatus.RUNNING and state,
        timeout=timeout,
        what="a final state",
    )


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    generate_test_clip(path, pattern="testsrc2", tone_hz=440, seconds=10, width=1280, height=720)
    return path


@pytest.fixture
def make_backend(tmp_path, store):
    backends = []

    def make(**options):
        backend = LocalBackend(
            root=tmp_path / "executor", store_config={"type": "filesystem", "root": str(store.root)}, **options
        )
        backends.append(backend)
        return backend

    yield make
    for backend in backends:  # never leave workers behind, whatever the test did
        kill_all_workers(backend.root)


@pytest.fixture
def short_payload(store, sample_clips):
    def make():
        inputs = {1: add_input(store, sample_clips["silent"])}
        return make_payload("multi_clip", {"clips": [{"clip_id": 1, "start": 0, "end": 1}]}, inputs)

    return make


@pytest.fixture
def slow_payload(store, long_clip, monkeypatch):
    """Ten seconds of 720p with x264's slowest preset: about half a minute of real ffmpeg work here."""
    monkeypatch.setenv("EXPORTS_X264_PRESET", "veryslow")

    def make():
        inputs = {1: add_input(store, long_clip)}
        return make_payload("multi_clip", {"clips": [{"clip_id": 1, "start": 0, "end": 10}]}, inputs)

    return make


def started(backend, call_id):
    path = backend.call_dir(call_id) / "started.json"
    return wait_for(lambda: path.exists() and json.loads(path.read_text()), what=f"{call_id} to start")


def wait_for_ffmpeg(process_group: int) -> None:
    wait_for(
        lambda: any("ffmpeg" in name for name in command_names(group_members(process_group))),
        what="ffmpeg in the worker's process group",
    )


def test_a_call_runs_the_export_and_returns_the_workers_result(make_backend, short_payload, store):
    backend = make_backend()
    payload = short_payload()
    call_id = backend.spawn("multi_clip", payload)
    assert call_id.startswith("local-")
    state = poll_until_final(backend, call_id)
    assert state.status is CallStatus.SUCCEEDED
    assert state.result.job_id == payload["job_id"]
    assert probe(store.path(state.result.output_key)).duration == pytest.approx(1.0, abs=0.1)


def test_a_call_completes_after_the_spawners_whole_process_group_is_killed(make_backend, slow_payload, monkeypatch):
    monkeypatch.setenv("EXPORTS_X264_PRESET", "ultrafast")
    backend = make_backend()
    payload = slow_payload()
    spawner_code = (
        "import json, sys, time\n"
        "from modal_jobs.local_backend import LocalBackend\n"
        f"backend = LocalBackend(root={str(backend.root)!r}, store_config={backend.store_config!r})\n"
        "print(backend.spawn('multi_clip', json.loads(sys.stdin.read())), flush=True)\n"
        "time.sleep(600)\n"
    )
    spawner = subprocess.Popen(
        [sys.executable, "-c", spawner_code],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    spawner.stdin.write(json.dumps(payload))
    spawner.stdin.close()
    call_id = spawner.stdout.readline().strip()
    worker_group = started(backend, call_id)["worker_pgid"]

    os.killpg(spawner.pid, signal.SIGKILL)
    spawner.wait(timeout=10)
    assert not (backend.call_dir(call_id) / "return.json").exists()  # it was still running when its spawner died
    assert group_members(worker_group)

    state = poll_until_final(backend, call_id)
    assert state.status is CallStatus.SUCCEEDED, state


def test_a_killed_worker_reads_as_failed_with_how_it_died(make_backend, slow_payload):
    backend = make_backend()
    call_id = backend.spawn("multi_clip", slow_payload())
    info = started(backend, call_id)
    wait_for_ffmpeg(info["worker_pgid"])

    os.kill(info["worker_pid"], signal.SIGKILL)

    state = poll_until_final(backend, call_id)
    assert state.status is CallStatus.FAILED
    assert state.message == "The worker was killed by SIGKILL without a result."
    wait_for(lambda: not group_members(info["worker_pgid"]), timeout=10, what="the worker's ffmpeg to be gone")


def test_cancel_stops_the_worker_and_its_ffmpeg_and_reads_as_terminated(make_backend, slow_payload):
    backend = make_backend()
    call_id = backend.spawn("multi_clip", slow_payload())
    info = started(backend, call_id)
    wait_for_ffmpeg(info["worker_pgid"])
    assert backend.poll(call_id).status is CallStatus.RUNNING

    backend.cancel(call_id)

    state = poll_until_final(backend, call_id, timeout=30)
    assert state.status is CallStatus.TERMINATED
    wait_for(lambda: not group_members(info["worker_pgid"]), timeout=10, what="no worker or ffmpeg left")
    assert not (backend.call_dir(call_id) / "return.json").exists()


def test_the_time_limit_turns_a_hung_worker_into_timed_out(make_backend, slow_payload):
    backend = make_backend(time_limit_seconds=2)
    call_id = backend.spawn("multi_clip", slow_payload())
    info = started(backend, call_id)

    state = poll_until_final(backend, call_id, timeout=30)

    assert state.status is CallStatus.TIMED_OUT
    assert state.message == "Stopped after the 2 s time limit."
    wait_for(lambda: not group_members(info["worker_pgid"]), timeout=10, what="no worker left")


def test_the_cap_queues_calls_and_the_queue_drains_with_no_spawner_alive_even_after_a_worker_is_killed(
    make_backend, slow_payload, short_payload
):
    backend = make_backend(max_workers=1)
    payloads = [slow_payload(), short_payload(), short_payload()]
    spawner_code = (
        "import json, sys\n"
        "from modal_jobs.local_backend import LocalBackend\n"
        f"backend = LocalBackend(root={str(backend.root)!r}, store_config={backend.store_config!r}, max_workers=1)\n"
        "for payload in json.loads(sys.stdin.read()):\n"
        "    print(backend.spawn('multi_clip', payload), flush=True)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", spawner_code], cwd=ROOT, input=json.dumps(payloads), capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    slow, second, third = completed.stdout.split()  # the spawner has exited

    slow_info = started(backend, slow)
    assert not (backend.call_dir(second) / "started.json").exists()
    assert not (backend.call_dir(third) / "started.json").exists()
    assert backend.poll(second).status is CallStatus.RUNNING  # queued reads as running
    assert not (backend.call_dir(second) / "started.json").exists()  # and the cap still holds

    os.kill(slow_info["worker_pid"], signal.SIGKILL)

    # Nobody polls or spawns from here on: the finishing supervisors start the next calls themselves.
    for call_id in (second, third):
        exit_file = backend.call_dir(call_id) / "exit.json"
        wait_for(exit_file.exists, what=f"{call_id} to finish")
    spans = []
    for call_id in (slow, second, third):
        start = json.loads((backend.call_dir(call_id) / "started.json").read_text())["started_at"]
        end = json.loads((backend.call_dir(call_id) / "exit.json").read_text())["finished_at"]
        spans.append((start, end))
    for (_, earlier_end), (later_start, _) in pairwise(spans):
        assert later_start >= earlier_end - 0.5  # one at a time (the lock is freed just before the next starts)
    assert backend.poll(slow).status is CallStatus.FAILED
    assert backend.poll(second).status is CallStatus.SUCCEEDED
    assert backend.poll(third).status is CallStatus.SUCCEEDED


def test_cancelling_a_queued_call_means_it_never_starts(make_backend, slow_payload, short_payload):
    backend = make_backend(max_workers=1)
    running = backend.spawn("multi_clip", slow_payload())
    queued = backend.spawn("multi_clip", short_payload())
    started(backend, running)

    backend.cancel(queued)

    assert backend.poll(queued).status is CallStatus.TERMINATED
    backend.cancel(running)
    assert poll_until_final(backend, running, timeout=30).status is CallStatus.TERMINATED
    time.sleep(0.5)
    assert not (backend.call_dir(queued) / "started.json").exists()


def test_a_worker_that_returns_an_error_reads_as_failed_with_its_message(make_backend, short_payload, store):
    backend = make_backend()
    payload = short_payload()
    store.delete(payload["inputs"]["1"]["key"])
    state = poll_until_final(backend, backend.spawn("multi_clip", payload))
    assert state.status is CallStatus.FAILED
    assert "No object" in state.message


def test_an_outcome_older_than_the_retention_reads_as_expired(make_backend, short_payload):
    backend = make_backend(result_ttl_seconds=0.5)
    call_id = backend.spawn("multi_clip", short_payload())
    wait_for(lambda: (backend.call_dir(call_id) / "exit.json").exists(), what="the call to end")
    time.sleep(0.6)
    assert backend.poll(call_id).status is CallStatus.EXPIRED


@pytest.mark.parametrize("call_id", ["local-" + "0" * 32, "fc-123", "../../etc", ""])
def test_an_id_the_executor_never_issued_reads_as_unknown(make_backend, call_id):
    assert make_backend().poll(call_id).status is CallStatus.UNKNOWN


def test_spawn_refuses_an_unknown_kind(make_backend):
    with pytest.raises(SpawnRefused):
        make_backend().spawn("slideshow", {})


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning to cores of their own needs two cores")
def test_workers_pinned_to_cores_of_their_own_run_each_on_its_own(make_backend, slow_payload):
    """As each Modal container has its CPUs: two workers of one core each never share one (ffmpeg included)."""
    backend = make_backend(max_workers=2, cores_per_worker=1)
    calls = [backend.spawn("multi_clip", slow_payload()) for _ in range(2)]
    pids = [
        wait_for(lambda call=call: (backend.call_dir(call) / "started.json").exists() and call, what="started")
        and json.loads((backend.call_dir(call) / "started.json").read_text())["worker_pid"]
        for call in calls
    ]

    cores = [os.sched_getaffinity(pid) for pid in pids]
    assert [len(one) for one in cores] == [1, 1]
    assert cores[0] != cores[1]

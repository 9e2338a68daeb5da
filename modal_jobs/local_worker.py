"""
Processes of the local executor (see local_backend.py); imports no Django.

    python -m modal_jobs.local_worker supervise CALL_DIR LOCK_FD SLOT
        Detaches (forks; the spawner only waits for the parent), runs the worker
        in its own process group, enforces the time limit and cancels, records how
        the worker ended in exit.json, then starts the next queued call.
    python -m modal_jobs.local_worker run CALL_DIR
        Runs the export and stores the returned dict in return.json.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .local_backend import KILL_GRACE_SECONDS, LocalBackend, read_json, signal_group, write_json_atomically

WAIT_STEP_SECONDS = 0.2


def supervise(call_dir: Path, lock_descriptor: int, slot: int) -> None:
    if os.fork() > 0:
        os._exit(0)  # the spawner waits for this parent only; the supervisor is reparented to init
    errors = os.open(call_dir / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(errors, 2)
    os.close(errors)
    call = read_json(call_dir / "call.json")
    limit = call["executor"]["time_limit_seconds"]
    scratch = call_dir / "tmp"
    scratch.mkdir(exist_ok=True)
    with open(call_dir / "worker.log", "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "modal_jobs.local_worker", "run", str(call_dir)],
            pass_fds=(lock_descriptor,),
            process_group=0,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env={**os.environ, "TMPDIR": str(scratch)},
        )
    os.sched_setaffinity(worker.pid, LocalBackend.from_call(call).cores_of(slot))  # ffmpeg inherits it
    started_at = time.time()
    write_json_atomically(
        call_dir / "started.json",
        {"started_at": started_at, "supervisor_pid": os.getpid(), "worker_pid": worker.pid, "worker_pgid": worker.pid},
    )
    timed_out = False
    stop_requested_at = None
    while True:
        try:
            worker.wait(timeout=WAIT_STEP_SECONDS)
            break
        except subprocess.TimeoutExpired:
            pass
        now = time.time()
        if stop_requested_at is None:
            if (call_dir / "cancel.json").exists():
                stop_requested_at = now
            elif now - started_at > limit:
                timed_out = True
                stop_requested_at = now
            if stop_requested_at is not None:
                signal_group(worker.pid, signal.SIGTERM)
        elif now - stop_requested_at > KILL_GRACE_SECONDS:
            signal_group(worker.pid, signal.SIGKILL)
    signal_group(worker.pid, signal.SIGKILL)  # nothing of the worker (ffmpeg included) outlives it
    code = worker.returncode
    if timed_out:
        ended = {"how": "timed_out", "limit": limit}
    elif code < 0:
        ended = {"how": "signal", "signal": signal.Signals(-code).name}
    else:
        ended = {"how": "exited", "code": code}
    write_json_atomically(call_dir / "exit.json", {**ended, "finished_at": time.time()})
    shutil.rmtree(scratch, ignore_errors=True)
    os.close(lock_descriptor)  # the call is over: free its slot
    LocalBackend.from_call(call).start_queued_calls()


def run(call_dir: Path) -> None:
    from .kinds import CHUNK_KIND
    from .store import store_from_config
    from .worker import log_to_stderr, run_chunk, run_export

    # A cancel's SIGTERM unwinds the worker (ffmpeg killed, a chunked export's chunk calls cancelled) instead
    # of ending it on the spot; the supervisor's SIGKILL follows if it does not end in time.
    signal.signal(signal.SIGTERM, stop)
    log_to_stderr()
    call = read_json(call_dir / "call.json")
    store = store_from_config(call["executor"]["store_config"])
    if call["kind"] == CHUNK_KIND:
        result = run_chunk(call["payload"], store=store)
    else:
        chunk_calls = LocalBackend.from_call(call)  # chunks run as calls of this executor, in their own slots
        result = run_export(call["payload"], store=store, call_id=call["call_id"], chunk_calls=chunk_calls)
    write_json_atomically(call_dir / "return.json", result)


def stop(signal_number, frame) -> None:
    raise SystemExit(128 + signal_number)


def main(arguments: list[str]) -> None:
    command, call_dir = arguments[0], Path(arguments[1])
    if command == "supervise":
        supervise(call_dir, int(arguments[2]), int(arguments[3]))
    elif command == "run":
        run(call_dir)
    else:
        raise SystemExit(f"Unknown command {command!r}.")


if __name__ == "__main__":
    main(sys.argv[1:])

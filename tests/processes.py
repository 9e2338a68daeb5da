"""Helpers to see and stop the processes the local executor starts."""

import json
import os
import signal
import time
from pathlib import Path

from modal_jobs.local_backend import POOLS, lock_is_held


def wait_for(predicate, *, timeout=60.0, step=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def live_processes() -> list[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every live (non-zombie) process, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            found.append((int(entry.name), int(fields[1]), int(fields[2])))
    return found


def group_members(process_group: int) -> list[int]:
    return [pid for pid, _, group in live_processes() if group == process_group]


def children(parent: int) -> list[int]:
    return [pid for pid, parent_pid, _ in live_processes() if parent_pid == parent]


def is_alive(pid: int) -> bool:
    return any(found == pid for found, _, _ in live_processes())


def command_names(pids: list[int]) -> list[str]:
    names = []
    for pid in pids:
        try:
            names.append(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode())
        except OSError:
            pass
    return names


def kill_all_workers(executor_root: Path) -> None:
    """
    Stop every worker a local executor started, and any its supervisors start meanwhile: a supervisor between
    starting its worker and writing started.json, or taking a queued call as its slot frees, would otherwise
    start one after the kill. Done when no call holds its lock.
    """

    def kill_once() -> bool:
        for folder, _ in POOLS.values():
            for queued in (executor_root / folder).glob("*"):
                queued.unlink(missing_ok=True)
        for started_file in (executor_root / "calls").glob("*/started.json"):
            worker_group = json.loads(started_file.read_text())["worker_pgid"]
            if group_members(worker_group):
                try:
                    os.killpg(worker_group, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return not any(lock_is_held(call / "lock") for call in (executor_root / "calls").glob("*"))

    wait_for(kill_once, timeout=20, what="every worker of the executor to be gone")

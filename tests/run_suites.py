"""
Run every test suite the project has, each against the services it proves, and time them.

    sqlite    everything that needs no outside service (the embedded default)
    postgres  engine-dependent tests and row-locking tests on PostgreSQL
    redis     channel-layer and cache tests on Redis

`make test` runs them all; `python tests/run_suites.py postgres` runs one. The
service URLs default to the machine's shared PostgreSQL and Redis and can be
overridden with TEST_POSTGRES_URL / TEST_REDIS_URL. Extra arguments after `--`
go to pytest.
"""

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SUITES = {
    "sqlite": ({}, ["-m", "not postgres and not redis"]),
    "postgres": (
        {"DATABASE_URL": os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")},
        ["-m", "database or postgres"],
    ),
    "redis": (
        {"REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")},
        ["-m", "redis"],
    ),
}


def main(argv: list[str]) -> int:
    names, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    names = names or list(SUITES)
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        print(f"Unknown suite(s): {', '.join(unknown)}. Known: {', '.join(SUITES)}.", file=sys.stderr)
        return 2
    results = []
    for name in names:
        variables, selection = SUITES[name]
        environment = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
        environment.update(variables)
        print(f"\n===== suite {name} =====", flush=True)
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as folder:
            report = Path(folder) / "report.xml"
            command = [sys.executable, "-m", "pytest", *selection, f"--junit-xml={report}", *extra]
            code = subprocess.call(command, cwd=ROOT, env=environment)
            failures = failed_tests(report)
        results.append((name, code, time.monotonic() - started, failures))
    print("\n===== suites =====")
    for name, code, seconds, failures in results:
        print(f"{name:<10} {'passed' if code == 0 else f'FAILED (exit {code})':<18} {seconds:7.1f} s")
        for test, reason in failures:
            print(f"    {test}\n        {reason}")
    print(f"{'total':<10} {'':<18} {sum(seconds for _, _, seconds, _ in results):7.1f} s")
    return 0 if all(code == 0 for _, code, _, _ in results) else 1


def failed_tests(report: Path) -> list[tuple[str, str]]:
    """The suite's failures and errors, each with the first line of its reason.

    They are printed again under the summary because a CI log is often read from its tail, where the
    last suite's output would otherwise hide what failed in an earlier one.
    """
    try:
        cases = ElementTree.parse(report).getroot().iter("testcase")
    except (OSError, ElementTree.ParseError):
        return []
    failures = []
    for case in cases:
        for outcome in (*case.findall("failure"), *case.findall("error")):
            reason = (outcome.get("message") or outcome.tag).strip().splitlines() or [outcome.tag]
            failures.append((f"{case.get('classname')}::{case.get('name')}", reason[0][:200]))
    return failures


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

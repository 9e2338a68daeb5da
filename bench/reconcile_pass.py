"""
One `reconcile_exports` pass in a fresh process, as cron runs it, against the
benchmarks' executor: `python -m bench.reconcile_pass [command options]`.
Prints JSON: the command's own summary, queries on every thread's connection,
executor polls, the process's resident memory before the command and its peak.
"""

import io
import json
import os
import sys
import threading

import django


def main(arguments: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exports_project.settings")
    django.setup()
    from django.core.management import call_command
    from django.db.backends.signals import connection_created

    from bench.common import instrumented_executor, memory_kib
    from exports.executor import use_backend

    queries = 0
    lock = threading.Lock()

    def count(execute, sql, params, many, context):
        nonlocal queries
        with lock:
            queries += 1
        return execute(sql, params, many, context)

    def instrument(sender, connection, **kwargs):
        connection.execute_wrappers.append(count)

    connection_created.connect(instrument)
    backend = instrumented_executor(float(os.environ.get("BENCH_EXECUTOR_LATENCY", "0.05")))
    use_backend(backend)
    queries = 0  # only the command's own
    resident_before_kib = memory_kib("VmRSS")
    output = io.StringIO()
    call_command("reconcile_exports", "--json", *arguments, stdout=output)
    summary = json.loads(output.getvalue())
    print(
        json.dumps(
            {
                **summary,
                "queries": queries,
                "polls": backend.calls["poll"],
                "peak_resident_kib": memory_kib("VmHWM"),
                "resident_before_kib": resident_before_kib,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])

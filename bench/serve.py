"""
daphne, as `make run` starts it, with the benchmarks' executor and counters:
`python -m bench.serve PORT`. Every 100 ms it writes how many executor polls and
store reads it has made to BENCH_COUNTS_FILE.
"""

import json
import os
import sys
import threading
import time
from pathlib import Path

import django


def main(port: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exports_project.settings")
    django.setup()
    from daphne.cli import CommandLineInterface

    from bench.common import instrumented_executor
    from exports import records
    from exports.executor import use_backend
    from exports.storage import object_store
    from testing_support.faults import CountingStore

    backend = instrumented_executor(float(os.environ.get("BENCH_EXECUTOR_LATENCY", "0.05")))
    use_backend(backend)
    store = CountingStore(object_store())
    records.object_store = lambda: store
    counts_file = Path(os.environ["BENCH_COUNTS_FILE"])

    def write_counts() -> None:
        while True:
            counts = {"polls": backend.calls["poll"], "store_reads": store.reads}
            temporary = counts_file.with_suffix(".tmp")
            temporary.write_text(json.dumps(counts))
            temporary.replace(counts_file)
            time.sleep(0.1)

    threading.Thread(target=write_counts, daemon=True).start()
    CommandLineInterface().run(["-b", "127.0.0.1", "-p", port, "exports_project.asgi:application"])


if __name__ == "__main__":
    main(sys.argv[1])

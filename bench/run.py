"""
`make bench`: every benchmark (issues 10 and 17) in one run on loopback, one table on
stdout, and docs/benchmarks.md rewritten from this run's numbers.

Runs on the embedded defaults (SQLite, in-memory channel layer, the
filesystem store) in var/bench/, which it wipes first. `--only 1,4` runs some
figures (docs/benchmarks.md is then left alone).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BENCH_DATA, ROOT, prepare_environment  # noqa: E402

FIGURES = ("1", "2", "4", "5", "6", "7", "8", "9", "10", "3")  # 3 last: it adds a million finished jobs to the database


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--only", help="Comma-separated figure numbers (1-10); the docs are not rewritten.")
    options = parser.parse_args()
    wanted = options.only.split(",") if options.only else list(FIGURES)
    started = time.monotonic()
    prepare_environment()
    from bench import report

    results = {}
    for figure in FIGURES:
        if figure in wanted:
            print(f"Figure {figure}: {report.TITLES[figure]} ...", flush=True)
            figure_started = time.monotonic()
            results[figure] = report.RUNNERS[figure]()
            print(f"  done in {time.monotonic() - figure_started:.0f} s", flush=True)
    (BENCH_DATA / "results.json").write_text(json.dumps(results, indent=2, default=str))
    rows = report.rows(results)
    print()
    print(report.text_table(rows))
    elapsed = time.monotonic() - started
    print(f"\n{len(rows)} figures in {elapsed / 60:.1f} min; raw numbers in {BENCH_DATA / 'results.json'}")
    if not options.only:
        target = ROOT / "docs" / "benchmarks.md"
        target.write_text(report.markdown(rows, results, elapsed))
        print(f"Wrote {target.relative_to(ROOT)}")
    missed = [row for row in rows if row.verdict == "missed"]
    if missed:
        print(f"Goals missed: {', '.join(row.figure for row in missed)} (see the table)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmarks' one table: rows with goal, baseline and verdict, as text and as docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from bench import (
    api_latency,
    chunk_model,
    chunked_render,
    eta_accuracy,
    fanout,
    pages_beside_sockets,
    pipeline_overhead,
    progress_latency,
    read_amplification,
    reconcile_throughput,
    worker_events,
)

TITLES = {
    "1": "progress latency, worker record to WebSocket client",
    "2": "read amplification per active job",
    "3": "reconcile_exports throughput",
    "4": "API latency with a long history",
    "5": "WebSocket fan-out to 500 sockets",
    "6": "pipeline overhead against hand-written ffmpeg",
    "7": "a page beside 200 open sockets",
    "8": "time-left estimate against the true time left",
    "9": "the workers' signed events",
    "10": "a long export in chunks",
}
LATENCY_UPDATES_WANTED = 100


def figure_1() -> dict:
    # One job gets at most one update a second (the tick), and a record replaced before a tick read it
    # is never sent: 120 s for 100+ updates with room to spare. Fifty jobs get there in seconds.
    return {"1": progress_latency.run(1, 120), "50": progress_latency.run(50, 25)}


def figure_10() -> dict:
    return chunked_render.run() | {"model": chunk_model.run()}


RUNNERS = {
    "1": figure_1,
    "2": read_amplification.run,
    "3": reconcile_throughput.run,
    "4": api_latency.run,
    "5": fanout.run,
    "6": pipeline_overhead.run,
    "7": pages_beside_sockets.run,
    "8": eta_accuracy.run,
    "9": worker_events.run,
    "10": figure_10,
}


@dataclass
class Row:
    figure: str
    measure: str
    result: str
    goal: str
    baseline: str
    verdict: str  # "met", "missed" or "-" (no goal)


def verdict(met: bool) -> str:
    return "met" if met else "missed"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.0f} %"


def eta_verdict(score: dict) -> str:
    return verdict(score["median"] is not None and score["median"] < 0.2 and score["worst"] < 0.5)


def rows(results: dict) -> list[Row]:
    table: list[Row] = []
    if "1" in results:
        for jobs, figure in results["1"].items():
            enough = figure["updates_received"] >= LATENCY_UPDATES_WANTED
            table.append(
                Row(
                    f"1 progress latency, {jobs} active job{'s' if jobs != '1' else ''}",
                    f"p50 / p95 / max over {figure['updates_received']} changes "
                    f"({figure['records_written']} records written)",
                    f"{ms(figure['p50'])} / {ms(figure['p95'])} / {ms(figure['max'])}",
                    "p95 < 1.5 s, >= 100 changes",
                    "-",
                    verdict(figure["p95"] < 1.5 and enough),
                )
            )
    if "2" in results:
        figure = results["2"]
        for way, label in (("sockets", "sockets"), ("polling", "tabs polling /api/exports/<id>/ (fallback)")):
            ceiling_polls = 1 / settings.EXPORTS_EXECUTOR_INTERVAL_SECONDS
            ceiling_reads = 1 / settings.EXPORTS_PROGRESS_INTERVAL_SECONDS
            cells = [(n, figure[way][n], figure["baseline"][n]) for n in sorted(figure[way], key=int)]
            flat = all(
                rates["polls"] <= ceiling_polls * 1.1 and rates["store_reads"] <= ceiling_reads * 1.1
                for _, rates, _ in cells
            )
            table.append(
                Row(
                    f"2 read amplification, 1 job watched by 1/10/50 {label}",
                    "executor polls/s ; store reads/s, per job",
                    " | ".join(f"{n}: {r['polls']:.2f} ; {r['store_reads']:.2f}" for n, r, _ in cells),
                    f"flat: <= 1/{1 / ceiling_polls:g} s polls, <= {ceiling_reads:g}/s reads (+10 %)",
                    " | ".join(f"{n}: {b['polls']:.2f} ; {b['store_reads']:.2f}" for n, _, b in cells)
                    + " (each tab polling on its own)",
                    verdict(flat),
                )
            )
    if "3" in results:
        figure = results["3"]
        for key, label in (("active_only", "10,000 active"), ("with_history", "10,000 active + 1,000,000 finished")):
            run = figure[key]
            table.append(
                Row(
                    f"3 reconcile_exports, {label}, 50 ms/poll",
                    "wall time ; jobs/s ; queries/job ; peak memory (growth during the pass)",
                    f"{run['seconds']:.1f} s ; {run['jobs_per_second']:.0f} ; {run['queries_per_job']:.2f} ; "
                    f"{run['peak_resident_kib'] / 1024:.0f} MiB "
                    f"(+{(run['peak_resident_kib'] - run['resident_before_kib']) / 1024:.0f} MiB)",
                    ">= 500 jobs/s at the default concurrency",
                    "-",
                    verdict(run["jobs_per_second"] >= 500),
                )
            )
    if "4" in results:
        figure = results["4"]
        for name, path in (("active", "/api/exports/active/"), ("detail", "/api/exports/<id>/")):
            without, with_history = figure["queries_without_history"][name], figure["queries_with_history"][name]
            constant = with_history == without
            table.append(
                Row(
                    f"4 GET {path}, 20 active + 10,000 finished",
                    f"p50 / p95 / max over {figure[name]['requests']} ; queries/request with no check due, all due",
                    f"{ms(figure[name]['p50'])} / {ms(figure[name]['p95'])} / {ms(figure[name]['max'])} ; "
                    f"{with_history['none_due']}, {with_history['all_due']}",
                    "p95 < 50 ms; queries constant in history",
                    f"queries with no history: {without['none_due']}, {without['all_due']}",
                    verdict(constant and figure[name]["p95"] < 0.05),
                )
            )
    if "5" in results:
        figure = results["5"]
        table.append(
            Row(
                f"5 fan-out, {figure['sockets']} sockets on one daphne",
                f"request to last socket p50 / max over {figure['changes']} changes ; first-to-last ; memory",
                f"{ms(figure['to_last_p50'])} / {ms(figure['to_last_max'])} ; {ms(figure['first_to_last_p50'])} ; "
                f"{figure['kib_per_socket']:.0f} KiB/socket",
                "(none set)",
                "-",
                "-",
            )
        )
    if "6" in results:
        for kind, figure in results["6"].items():
            table.append(
                Row(
                    f"6 pipeline overhead, {kind} ({figure['output']})",
                    "worker ; hand-written ffmpeg ; ratio (medians)",
                    f"{figure['pipeline_seconds']:.2f} s ; {figure['hand_written_seconds']:.2f} s ; "
                    f"{figure['ratio']:.2f}x",
                    f"<= {pipeline_overhead.GOAL}x",
                    "the hand-written command",
                    verdict(figure["ratio"] <= pipeline_overhead.GOAL),
                )
            )
    if "7" in results:
        alone, beside = results["7"]["alone"], results["7"]["beside_sockets"]
        table.append(
            Row(
                f"7 GET /api/projects/ beside {beside['sockets']} sockets of another user (5 exports running)",
                f"p50 / p95 / max over {beside['requests']} ; handshakes failed",
                f"{ms(beside['p50'])} / {ms(beside['p95'])} / {ms(beside['max'])} ; {beside['handshakes_failed']}",
                "p95 < 100 ms, no handshake failed",
                f"no socket open: {ms(alone['p50'])} / {ms(alone['p95'])} / {ms(alone['max'])}",
                verdict(beside["p95"] < 0.1 and beside["handshakes_failed"] == 0),
            )
        )
    if "8" in results:
        figure = results["8"]
        window = f"records from {eta_accuracy.FROM_PERCENT} % with >= {eta_accuracy.MIN_TRUE_SECONDS:.0f} s left"
        pages = f"the browser's rate since the page opened ({figure['page_opens']} pages per job)"
        for kind, one in figure["kinds"].items():
            slowest, fastest = one["pace"]
            table.append(
                Row(
                    f"8 time left, {kind} ({one['media_seconds']:.0f} s of 640x360 media, rendered in "
                    f"{one['job_seconds']:.0f} s at {slowest:.1f}-{fastest:.1f} media s/s)",
                    f"median / worst error over {one['counted']} {window} ; blank ; largest step",
                    f"{percent(one['median'])} / {percent(one['worst'])} ; {one['blank']} ; "
                    f"{percent(one['largest_step'])}",
                    "median < 20 %, worst < 50 %",
                    f"{pages}: {percent(one['baseline']['median'])} / {percent(one['baseline']['worst'])} ; "
                    f"blank {one['baseline']['blank']} of {one['baseline']['counted']}",
                    eta_verdict(one),
                )
            )
        together, baseline = figure["all"]["estimate"], figure["all"]["baseline"]
        table.append(
            Row(
                "8 time left, the three kinds together",
                f"median / worst error over {together['counted']} {window} ; blank",
                f"{percent(together['median'])} / {percent(together['worst'])} ; {together['blank']}",
                "median < 20 %, worst < 50 %",
                f"{pages}: {percent(baseline['median'])} / {percent(baseline['worst'])} ; "
                f"blank {baseline['blank']} of {baseline['counted']}",
                eta_verdict(together),
            )
        )
    if "9" in results:
        table += worker_event_rows(results["9"])
    if "10" in results:
        figure = results["10"]
        media = f"{figure['media_seconds']} s of 640x360 in {figure['chunk_seconds']} s chunks"
        table += [
            Row(
                f"10 chunked render speed-up, two one-core workers against one ({media})",
                "whole on one worker ; in chunks on two ; speed-up (medians)",
                f"{figure['whole_one_worker']:.1f} s ; {figure['chunked_two_workers']:.1f} s ; "
                f"{figure['speed_up']:.2f}x",
                f">= {chunked_render.SPEED_UP_GOAL}x",
                "the whole render on one worker",
                verdict(figure["speed_up"] >= chunked_render.SPEED_UP_GOAL),
            ),
            Row(
                f"10 chunked render CPU overhead ({media})",
                "ffmpeg CPU: whole ; in chunks (with the audio and the join) ; ratio (medians)",
                f"{figure['whole_cpu']:.1f} s ; {figure['chunked_cpu']:.1f} s ; {figure['overhead']:.2f}x",
                f"<= {chunked_render.OVERHEAD_GOAL}x",
                "the whole render",
                verdict(figure["overhead"] <= chunked_render.OVERHEAD_GOAL),
            ),
        ]
        table += chunk_model_rows(figure["model"])
    return table


def chunk_model_rows(figure: dict) -> list[Row]:
    def stages(modelled: dict) -> str:
        return (
            f"{modelled['total']:.0f} s: spawns {modelled['spawned_last']:.0f} s + chunk "
            f"{modelled['chunk_path']:.0f} s, or the export's audio {modelled['audio_path']:.0f} s; "
            f"then {modelled['tail']:.0f} s to fetch, join and store"
        )

    modal, remotion, measured = figure["modal"], figure["remotion"], figure["measured"]
    rates = (
        f"measured: 1080p chunk {measured['chunk_machine']:.2f} s per media s on this machine "
        f"({measured['chunk_one_core']:.2f} on one core), audio {measured['audio'] * 60:.1f} s per media minute, "
        f"join {measured['join'] * 60:.2f} s per media minute"
    )
    return [
        Row(
            f"10 a MODEL, not a run: 40 min of 1080p on Modal in {modal['containers']} chunk containers",
            rates,
            f"{stages(modal)}; within the goal while a chunk renders at "
            f"<= {modal['slowest_render_rate_within_goal']:.1f} s per media s",
            f"<= {figure['goal_seconds']} s",
            f"the same model with Remotion Lambda's configuration ({remotion['containers']} functions of about one "
            f"core): {stages(remotion)}; Remotion's own published figure: "
            f"about {figure['remotion_published_seconds']} s",
            verdict(modal["total"] <= figure["goal_seconds"]),
        )
    ]


def worker_event_rows(figure: dict) -> list[Row]:
    with_events, without = figure["latency"]["events"], figure["latency"]["baseline"]
    lag = figure["finalization"]
    rows_ = [
        Row(
            "9 progress latency with events, 50 active jobs",
            f"p50 / p95 / max over {with_events['updates_received']} changes",
            f"{ms(with_events['p50'])} / {ms(with_events['p95'])} / {ms(with_events['max'])}",
            "p95 <= 100 ms",
            f"without events: {ms(without['p50'])} / {ms(without['p95'])} / {ms(without['max'])}",
            verdict(with_events["p95"] <= 0.1),
        ),
        Row(
            "9 finalization lag, nobody watching, no cron",
            f"result stored to job complete, p50 / p95 / max over {lag['finalized']} of {lag['jobs']} jobs",
            f"{ms(lag['p50'])} / {ms(lag['p95'])} / {ms(lag['max'])}",
            "p95 <= 1 s",
            f"without events: {lag['baseline_still_processing']} of {lag['baseline_jobs']} jobs still processing "
            "(until someone looks)",
            verdict(lag["finalized"] == lag["jobs"] and lag["p95"] <= 1.0),
        ),
    ]
    for seconds, polls in figure["polls"].items():
        length = f"{int(seconds) // 60} min" if int(seconds) >= 60 and int(seconds) % 60 == 0 else f"{seconds} s"
        rows_.append(
            Row(
                f"9 executor polls for a {length} export, socket open (time 10x faster)",
                "polls during the export",
                f"{polls['events']}",
                "a handful (<= 5), not growing with duration",
                f"without events: {polls['baseline']}",
                verdict(polls["events"] <= 5),
            )
        )
    throughput = figure["throughput"]
    rows_.append(
        Row(
            "9 events endpoint on one daphne process",
            "events/s ; p95 by senders at once",
            " | ".join(
                f"{senders}: {one['per_second']:.0f}/s ; {ms(one['p95'])}"
                for senders, one in throughput["by_senders"].items()
            )
            + f" ; most with p95 < 50 ms: {throughput['best_within_goal']:.0f}/s",
            "(sizes a deployment)",
            "-",
            "-",
        )
    )
    return rows_


COLUMNS = ("Figure", "Measure", "Result", "Goal", "Baseline", "Verdict")


def cells(row: Row) -> tuple[str, ...]:
    return (row.figure, row.measure, row.result, row.goal, row.baseline, row.verdict)


def text_table(table: list[Row]) -> str:
    lines = []
    for row in table:
        lines.append(f"[{row.verdict:>6}] {row.figure}")
        lines.append(f"         {row.measure}: {row.result}")
        lines.append(f"         goal: {row.goal}   baseline: {row.baseline}")
    return "\n".join(lines)


def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        memory_kib = int(meminfo.readline().split()[1])
    from modal_jobs.media import ffmpeg_executable

    ffmpeg = subprocess.run([ffmpeg_executable(), "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    import django

    return {
        "Date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": f"{model}, {os.cpu_count()} cores",
        "Memory": f"{memory_kib / 1024 / 1024:.0f} GiB",
        "System": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Django": django.get_version(),
        "SQLite": sqlite3.sqlite_version,
        "ffmpeg": ffmpeg,
    }


def markdown(table: list[Row], results: dict, elapsed_seconds: float) -> str:
    from bench.method import METHOD

    header = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    body = "".join("| " + " | ".join(cell.replace("|", "\\|") for cell in cells(row)) + " |\n" for row in table)
    missed = [row.figure for row in table if row.verdict == "missed"]
    machine_lines = "".join(f"- {key}: {value}\n" for key, value in machine().items())
    verdict_line = (
        "Every goal was met in this run."
        if not missed
        else "Goals missed in this run: " + "; ".join(missed) + ". See the notes below."
    )
    return (
        "# Benchmarks\n\n"
        "Written by `make bench` from its last full run; do not edit by hand (the notes come from "
        "`bench/method.py`).\n\n"
        f"## Machine\n\n{machine_lines}- Whole run: {elapsed_seconds / 60:.1f} min\n\n"
        f"## Results\n\n{verdict_line}\n\n{header}{body}\n{METHOD}"
    )

"""Reconcile every active export with its executor: cron-friendly, idempotent, the same reconcile_jobs as views."""

import json
import logging
import signal
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from exports.events import forget_old_receipts
from exports.models import ExportJob, Trigger
from exports.notices import tell_owners_left_untold
from exports.pruning import purge_deleted_projects
from exports.reconcile import Outcome, reconcile_jobs

logger = logging.getLogger(__name__)

# A batch whose database work failed (the database is everyone's: reconcile_jobs lets its errors out).
CRASHED = "crashed"
DATABASE_THREADS = 4


def reconcile_batch(job_ids: list, *, dry_run: bool) -> Counter:
    """Reconcile a batch with its executor calls in flight at once."""
    try:
        jobs = list(ExportJob.objects.select_related("project").filter(pk__in=job_ids))
        outcomes = Counter({Outcome.TERMINAL: len(job_ids) - len(jobs)})  # deleted since the pass listed them
        outcomes.update(outcome for _, outcome in reconcile_jobs(jobs, trigger=Trigger.COMMAND, dry_run=dry_run))
        return outcomes
    except Exception:
        logger.exception("Reconciling a batch of %d jobs crashed", len(job_ids))
        return Counter({CRASHED: len(job_ids)})


def reconcile_batches(batches: list[list], *, dry_run: bool) -> Counter:
    """One database thread's share of the pass, on its own connection, closed once at the end."""
    try:
        return sum((reconcile_batch(batch, dry_run=dry_run) for batch in batches), Counter())
    finally:
        connection.close()


def reconcile_all(job_ids: list, *, concurrency: int, dry_run: bool) -> Counter:
    """
    Keep up to `concurrency` executor calls in flight: a few database threads,
    each reconciling a batch of concurrency / threads jobs at a time.
    """
    threads = max(1, min(DATABASE_THREADS, concurrency, len(job_ids)))
    batch_size = max(1, min(concurrency // threads, len(job_ids) // threads))
    batches = [job_ids[start : start + batch_size] for start in range(0, len(job_ids), batch_size)]
    shares = [batches[thread::threads] for thread in range(threads)]
    outcomes = Counter()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="reconcile") as pool:
        for counted in pool.map(lambda share: reconcile_batches(share, dry_run=dry_run), shares):
            outcomes.update(counted)
    return +outcomes  # drop zero counts


class Command(BaseCommand):
    help = "Check every active export against its executor and the worker's records; finalize what finished."

    def add_arguments(self, parser):
        parser.add_argument(
            "--concurrency",
            type=int,
            default=settings.EXPORTS_EXECUTOR_CONCURRENCY,
            help="Executor calls in flight at once (default EXPORTS_EXECUTOR_CONCURRENCY, 64).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Report what would change; change nothing.")
        parser.add_argument("--user", help="Only this username's jobs.")
        parser.add_argument("--job", action="append", default=[], help="Only this job id (repeatable).")
        parser.add_argument("--older-than", type=float, metavar="MINUTES", help="Only jobs created before.")
        parser.add_argument("--limit", type=int, help="Check at most this many jobs (oldest first).")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")
        parser.add_argument(
            "--loop",
            type=float,
            metavar="SECONDS",
            help="Run a pass every SECONDS until SIGTERM or SIGINT (a sidecar).",
        )

    def handle(self, *args, **options):
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1.")
        if options["loop"] is None:
            self.run_pass(options)
            return
        if options["loop"] <= 0:
            raise CommandError("--loop takes a positive number of seconds.")
        self.run_forever(options)

    def run_forever(self, options) -> None:
        """Pass after pass until told to stop; a signal ends the loop after the pass in hand, never inside one."""
        stopping = threading.Event()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signal_number, lambda number, frame: stopping.set())
        passes = 0
        while not stopping.is_set():
            try:
                self.run_pass(options)
            except CommandError as error:
                logger.warning("Pass %d: %s", passes + 1, error)
                self.stderr.write(str(error))
            passes += 1
            stopping.wait(options["loop"])
        self.stdout.write(f"Stopped after {passes} pass(es).")

    def run_pass(self, options) -> None:
        started = time.monotonic()
        job_ids = self.select_jobs(options)
        outcomes = reconcile_all(job_ids, concurrency=options["concurrency"], dry_run=options["dry_run"])
        purged = 0 if options["dry_run"] else purge_deleted_projects()
        told = 0 if options["dry_run"] else tell_owners_left_untold()
        if not options["dry_run"]:
            forget_old_receipts()
        summary = {
            "checked": len(job_ids),
            "seconds": round(time.monotonic() - started, 3),
            "dry_run": options["dry_run"],
            "outcomes": {str(outcome): count for outcome, count in sorted(outcomes.items())},
            "purged_projects": purged,
            "late_notices": told,
        }
        self.report(summary, as_json=options["json"])
        if outcomes[CRASHED] or outcomes[Outcome.ERROR]:
            failed = outcomes[CRASHED] + outcomes[Outcome.ERROR]
            raise CommandError(f"The check of {failed} job(s) failed; see the log for each job id.")
        if outcomes[Outcome.UNAVAILABLE]:
            raise CommandError(f"The executor was unavailable for {outcomes[Outcome.UNAVAILABLE]} job(s).")

    def select_jobs(self, options) -> list:
        jobs = ExportJob.objects.active().order_by("created_at")
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user named {options['user']!r}.")
            jobs = jobs.filter(owner=user)
        if options["job"]:
            try:
                jobs = jobs.filter(pk__in=[uuid.UUID(value) for value in options["job"]])
            except ValueError:
                raise CommandError("--job takes export job ids (UUIDs).") from None
        if options["older_than"] is not None:
            jobs = jobs.filter(created_at__lt=timezone.now() - timedelta(minutes=options["older_than"]))
        if options["limit"]:
            jobs = jobs[: options["limit"]]
        return list(jobs.values_list("pk", flat=True))

    def report(self, summary: dict, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(summary))
            return
        verb = "Would reconcile" if summary["dry_run"] else "Reconciled"
        self.stdout.write(f"{verb} {summary['checked']} active export(s) in {summary['seconds']:.1f} s")
        for outcome, count in summary["outcomes"].items():
            self.stdout.write(f"  {outcome:<12} {count}")
        if summary["purged_projects"]:
            self.stdout.write(f"  purged {summary['purged_projects']} deleted project(s)")
        if summary["late_notices"]:
            self.stdout.write(f"  told {summary['late_notices']} owner(s) of exports a crash left untold")

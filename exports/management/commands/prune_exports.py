"""Delete what finished exports no longer need from storage; report orphans. Cron-friendly and idempotent."""

import json
from dataclasses import asdict

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from exports.pruning import prune_exports


class Command(BaseCommand):
    help = "Delete old progress/result records and failed or cancelled outputs; report orphaned objects."

    def add_arguments(self, parser):
        parser.add_argument(
            "--retention-days",
            type=float,
            default=None,
            help=f"Keep records this long after a job finished (default EXPORTS_RETENTION_DAYS, now "
            f"{settings.EXPORTS_RETENTION_DAYS:g}).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Report what would be deleted; delete nothing.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, **options):
        retention = options["retention_days"]
        retention = settings.EXPORTS_RETENTION_DAYS if retention is None else retention
        if retention < 0:
            raise CommandError("--retention-days cannot be negative.")
        report = prune_exports(retention_days=retention, dry_run=options["dry_run"])
        if options["json"]:
            self.stdout.write(json.dumps({**asdict(report), "dry_run": options["dry_run"]}))
        else:
            verb = "Would delete" if options["dry_run"] else "Deleted"
            self.stdout.write(f"{verb} {len(report.deleted)} object(s) of {report.jobs_pruned} finished job(s)")
            self.stdout.write(f"  kept (used by a working video)  {len(report.kept_in_use)}")
            self.stdout.write(f"  orphaned objects (no job)        {len(report.orphans)}")
            for key in report.orphans[:20]:
                self.stdout.write(f"    {key}")
            self.stdout.write(f"  working videos missing objects   {len(report.videos_missing_objects)}")
            for video_id in report.videos_missing_objects[:20]:
                self.stdout.write(f"    working video {video_id}")
        if report.errors:
            for error in report.errors:
                self.stderr.write(error)
            raise CommandError(f"{len(report.errors)} error(s) while pruning.")

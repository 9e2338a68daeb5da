"""Create the demo user, project and clips; safe to run any number of times."""

import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from modal_jobs.media import generate_test_clip
from projects import services
from projects.models import Project

DEMO_PROJECT_NAME = "Demo project"
# Three visibly and audibly distinct clips.
DEMO_CLIPS = [
    ("Test pattern (440 Hz).mp4", "testsrc2", 440),
    ("HD colour bars (660 Hz).mp4", "smptehdbars", 660),
    ("Classic test card (880 Hz).mp4", "testsrc", 880),
]


class Command(BaseCommand):
    help = "Create user demo/demo with a demo project of three real clips (and admin/admin with DEBUG on)."

    def add_arguments(self, parser):
        parser.add_argument("--password", default="demo", help="Password for the demo user (default: demo).")
        parser.add_argument("--clip-seconds", type=float, default=20.0, help="Length of each generated clip.")
        parser.add_argument("--width", type=int, default=1280)
        parser.add_argument("--height", type=int, default=720)
        parser.add_argument("--frame-rate", type=int, default=30)

    def handle(self, *args, **options):
        user_model = get_user_model()
        with transaction.atomic():
            demo, created = user_model.objects.get_or_create(username="demo", defaults={"email": "demo@example.com"})
            # A new hash for the same password would change the session auth hash and sign out every open
            # session, and make run seeds on every start: only a password that differs is set.
            password_matches = not created and demo.check_password(options["password"])
            if not password_matches:
                demo.set_password(options["password"])
                demo.save()
        if created:
            self.stdout.write("User demo: created.")
        else:
            said = "password unchanged" if password_matches else "password updated"
            self.stdout.write(f"User demo: exists ({said}).")

        project, created = Project.objects.get_or_create(owner=demo, name=DEMO_PROJECT_NAME)
        self.stdout.write(f"Project “{DEMO_PROJECT_NAME}”: {'created' if created else 'exists'}.")

        existing = set(project.clips.values_list("original_name", flat=True))
        for name, pattern, tone_hz in DEMO_CLIPS:
            if name in existing:
                self.stdout.write(f"  clip {name}: exists")
                continue
            with tempfile.TemporaryDirectory() as scratch:
                path = Path(scratch) / "clip.mp4"
                try:
                    generate_test_clip(
                        path,
                        pattern=pattern,
                        tone_hz=tone_hz,
                        seconds=options["clip_seconds"],
                        width=options["width"],
                        height=options["height"],
                        frame_rate=options["frame_rate"],
                    )
                except RuntimeError as error:
                    raise CommandError(f"Could not render demo clip {name}: {error}") from error
                clip = services.add_clip(project=project, path=str(path), original_name=name)
            self.stdout.write(f"  clip {name}: created ({clip.duration:.1f} s, {clip.width}x{clip.height})")

        if settings.DEBUG:
            admin, created = user_model.objects.get_or_create(
                username="admin", defaults={"is_staff": True, "is_superuser": True}
            )
            if created:
                admin.set_password("admin")
                admin.save()
            self.stdout.write(f"Superuser admin: {'created with password admin' if created else 'exists'}.")
        else:
            self.stdout.write("DEBUG is off: no admin/admin superuser (use createsuperuser).")

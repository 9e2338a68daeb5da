"""The History page's rows: what each export took, as its owner waited for it."""

from datetime import timedelta

import pytest
from django.urls import reverse

from exports.models import ExportJob, ExportStatus
from exports.templatetags.durations import duration

from ..factories import ExportJobFactory


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.4, "0 s"), (42, "42 s"), (60, "1 min"), (185, "3 min 5 s"), (3600, "1 h"), (4330, "1 h 12 min")],
)
def test_a_duration_is_said_in_its_two_largest_units(seconds, shown):
    assert duration(timedelta(seconds=seconds)) == shown


def finished_after(project, seconds: float) -> ExportJob:
    job = ExportJobFactory(project=project, status=ExportStatus.COMPLETE)
    ExportJob.objects.filter(pk=job.pk).update(finished_at=job.created_at + timedelta(seconds=seconds))
    return job


def test_an_export_that_took_under_a_minute_says_its_seconds_and_a_running_one_says_nothing(owner_client, project):
    """Before: timesince said "0 minutes" for any export under a minute, most of them."""
    finished_after(project, 42.3)
    finished_after(project, 185)
    running = ExportJobFactory(project=project, status=ExportStatus.PROCESSING)

    page = owner_client.get(reverse("exports:history")).content.decode()
    row = owner_client.get(reverse("exports:history_row", args=[running.pk])).content.decode()

    assert '<td data-label="Took">42 s</td>' in page
    assert '<td data-label="Took">3 min 5 s</td>' in page
    assert "0 minutes" not in page
    assert '<td data-label="Took"></td>' in row

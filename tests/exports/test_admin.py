"""The exports admin: staff only, explains a job on one screen, and every action lands on the timeline."""

import re
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from exports.executor import get_executor
from exports.models import ErrorReason, ExportJob, ExportJobEvent, ExportKind, ExportStatus, Trigger
from exports.reconcile import reconcile_job
from modal_jobs.executors import CallStatus
from projects.models import Project

from ..factories import ExportJobFactory, ProjectFactory
from ..helpers import start
from ..processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client():
    admin = get_user_model().objects.create_superuser("boss", password="x")
    client = Client()
    client.force_login(admin)
    return client, admin


def act(client, action, jobs):
    return client.post(
        reverse("admin:exports_exportjob_changelist"),
        {"action": action, "_selected_action": [str(job.pk) for job in jobs]},
        follow=True,
    )


def test_non_staff_users_cannot_see_or_act(owner_client, project):
    job = ExportJobFactory(project=project)
    for url in (
        reverse("admin:exports_exportjob_changelist"),
        reverse("admin:exports_exportjob_change", args=[job.pk]),
    ):
        response = owner_client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    act(owner_client, "mark_as_error", [job])
    assert ExportJob.objects.get(pk=job.pk).status == ExportStatus.PENDING


def test_the_detail_page_shows_params_the_progress_record_the_executor_and_the_timeline(
    executor, staff_client, project, clip
):
    client, _ = staff_client
    job = start(project, clip)
    wait_for(lambda: executor.inner.poll(job.call_id).status is CallStatus.SUCCEEDED, what="the call")
    html = client.get(reverse("admin:exports_exportjob_change", args=[job.pk])).content.decode()
    assert "&quot;clip_id&quot;: " + str(clip.pk) in html  # pretty params
    assert "&quot;percent&quot;: 100" in html  # the worker's record
    assert "<strong>succeeded</strong>" in html  # the executor, asked live
    assert "Spawned on the executor" in html  # the timeline


def test_the_detail_page_lists_a_chunked_exports_chunks_with_their_state_call_and_time(
    executor, staff_client, project, clip, settings
):
    settings.EXPORTS_CHUNK_SECONDS = 0.3
    client, _ = staff_client
    job = start(project, clip, end=1.0)
    wait_for(lambda: executor.inner.poll(job.call_id).status is CallStatus.SUCCEEDED, timeout=60, what="the call")

    html = client.get(reverse("admin:exports_exportjob_change", args=[job.pk])).content.decode()
    cells = r"<tr><td>(\d) of 3</td><td>([\d.]+) s</td><td>(\w+)</td><td>(\d)</td>"
    cells += r'<td><span title="(local-\w+)">local-\w+…</span></td><td>([\d.]+) s</td></tr>'
    rows = re.findall(cells, re.sub(r">\s+<", "><", html))
    assert [(number, state, tries) for number, _, state, tries, _, _ in rows] == [
        ("1", "rendered", "1"), ("2", "rendered", "1"), ("3", "rendered", "1")
    ]  # fmt: skip
    assert len({call for *_, call, _ in rows}) == 3


def test_the_detail_page_shows_an_unavailable_executor_instead_of_failing(executor, staff_client, project):
    client, _ = staff_client
    job = ExportJobFactory(project=project, status=ExportStatus.PROCESSING, call_id="local-" + "c" * 32)
    executor.fault = "down"
    response = client.get(reverse("admin:exports_exportjob_change", args=[job.pk]))
    assert response.status_code == 200
    assert "Unavailable: injected: the executor is down" in response.content.decode()


def test_actions_land_on_the_timeline_with_the_admin(executor, staff_client, project, long_clip, eager_checks):
    client, admin = staff_client
    job = start(project, long_clip, end=10)

    act(client, "mark_as_error", [job])
    job.refresh_from_db()
    assert (job.status, job.error_reason) == (ExportStatus.ERROR, ErrorReason.ADMIN)
    wait_for(lambda: executor.inner.poll(job.call_id).status is CallStatus.TERMINATED, what="the cancel")
    act(client, "retry", [job])
    retried = ExportJob.objects.exclude(pk=job.pk).get(project=project)
    act(client, "cancel_on_executor", [retried])
    act(client, "reconcile_now", [retried])

    events = ExportJobEvent.objects.filter(trigger="admin")
    assert set(events.values_list("kind", flat=True)) >= {"failed", "retried", "cancel_requested"}
    acted = events.filter(kind__in=["failed", "retried", "created", "cancel_requested"])
    assert {event.actor for event in acted} == {admin}
    assert events.get(job=job, kind="failed").message.startswith("Marked as error by an admin: Marked as error by boss")


def test_the_changelist_of_a_thousand_jobs_costs_a_bounded_number_of_queries(
    staff_client, django_assert_max_num_queries
):
    client, _ = staff_client
    owner = ProjectFactory().owner
    projects = Project.objects.bulk_create([Project(owner=owner, name=f"P{number}") for number in range(334)])
    kinds = list(ExportKind)
    ExportJob.objects.bulk_create(
        ExportJob(owner=owner, project=projects[n // 3], kind=kinds[n % 3], backend="local", status="processing")
        for n in range(1000)
    )
    for query in ("", "?suspect=yes", "?status__exact=processing&q=P1"):
        with django_assert_max_num_queries(12):
            response = client.get(reverse("admin:exports_exportjob_changelist") + query)
        assert response.status_code == 200


def test_working_videos_play_for_staff_in_the_admin(staff_client, project, clip):
    from exports.models import WorkingVideo

    client, _ = staff_client
    job = ExportJobFactory(project=project, status=ExportStatus.COMPLETE, progress=100)
    video = WorkingVideo.objects.create(
        project=project, export_job=job, media=clip.media.name, duration=2, width=320, height=240, size=1
    )
    page = client.get(reverse("admin:exports_workingvideo_change", args=[video.pk])).content.decode()
    media_url = reverse("admin:exports_workingvideo_media", args=[video.pk])
    assert f'<video controls preload="metadata" src="{media_url}"' in page
    assert client.get(media_url, HTTP_RANGE="bytes=0-9").status_code == 206
    project_page = client.get(reverse("admin:projects_project_change", args=[project.pk])).content.decode()
    assert "Working videos" in project_page


def test_the_logs_page_shows_what_a_local_call_printed(executor, staff_client, project, clip):
    client, _ = staff_client
    job = start(project, clip)
    wait_for(lambda: executor.inner.poll(job.call_id).status is CallStatus.SUCCEEDED, what="the call")

    change_page = client.get(reverse("admin:exports_exportjob_change", args=[job.pk])).content.decode()
    logs_url = reverse("admin:exports_exportjob_logs", args=[job.pk])
    page = client.get(logs_url).content.decode()

    assert f'href="{logs_url}"' in change_page
    assert executor.calls["logs"] == 1  # fetched by the logs page only, not by the change page
    assert f"Export {job.pk} (multi_clip) started: call {job.call_id}" in page
    assert f"Export {job.pk} succeeded" in page


@pytest.mark.parametrize("hostile", ["directory", "symlink", "missing"])
def test_the_logs_page_says_not_available_when_the_log_cannot_be_read(
    executor, staff_client, project, clip, hostile, tmp_path
):
    client, _ = staff_client
    call_id = "local-" + "b" * 32
    job = ExportJobFactory(project=project, status=ExportStatus.PROCESSING, call_id=call_id)
    call_dir = executor.inner.call_dir(call_id)
    call_dir.mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("a file outside the executor")
    if hostile == "directory":
        (call_dir / "worker.log").mkdir()
    elif hostile == "symlink":
        (call_dir / "worker.log").symlink_to(secret)

    response = client.get(reverse("admin:exports_exportjob_logs", args=[job.pk]))

    assert response.status_code == 200
    assert "Not available: " in response.content.decode()
    assert "a file outside the executor" not in response.content.decode()


def test_the_logs_page_says_not_available_when_the_executor_does_not_answer(executor, staff_client, project):
    client, _ = staff_client
    job = ExportJobFactory(project=project, status=ExportStatus.PROCESSING, call_id="local-" + "c" * 32)
    executor.fault = "hang"
    get_executor().failure_threshold = 1

    response = client.get(reverse("admin:exports_exportjob_logs", args=[job.pk]))

    assert "Not available: The executor did not answer logs within 2.0 s." in response.content.decode()
    assert not get_executor().breaker_open


# The job page's Reconcile now, beside the executor's live answer


RECONCILE_BUTTON = '<button type="submit" form="reconcile-now"'


def change_url(job):
    return reverse("admin:exports_exportjob_change", args=[job.pk])


def reconcile_url(job):
    return reverse("admin:exports_exportjob_reconcile", args=[job.pk])


def csrf_token_of_the_reconcile_form(page: str) -> str:
    form = re.search(r'<form id="reconcile-now" method="post" action="([^"]+)">(.*?)</form>', page, re.S)
    assert form, "no Reconcile now form on the page"
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.group(2)).group(1)


@pytest.fixture
def failed_call(executor, project, clip, eager_checks):
    """A one-second export whose call has failed on the executor (its input is gone), not yet reconciled."""
    clip.media.storage.delete(clip.media.name)
    job = start(project, clip)
    wait_for(lambda: executor.inner.poll(job.call_id).status is CallStatus.FAILED, what="the failure")
    return job


def test_reconcile_now_is_offered_beside_the_live_answer_only_while_it_disagrees_with_the_job(
    staff_client, finished_call
):

    client, _ = staff_client
    page = client.get(change_url(finished_call)).content.decode()
    said = page.index("<strong>succeeded</strong>")
    assert page.index("— the job is still Processing at 0 %.", said) < page.index(RECONCILE_BUTTON, said)
    assert f'<form id="reconcile-now" method="post" action="{reconcile_url(finished_call)}">' in page
    assert ExportJob.objects.get(pk=finished_call.pk).status == ExportStatus.PROCESSING  # looking changed nothing

    reconcile_job(finished_call, trigger=Trigger.VIEW)  # now both say it is over
    page = client.get(change_url(finished_call)).content.decode()
    assert "<strong>succeeded</strong>" in page
    assert RECONCILE_BUTTON not in page and "the job is still" not in page


def test_reconcile_now_is_not_offered_while_the_call_runs_or_the_executor_does_not_answer_only_once_it_ended(
    executor, staff_client, project, long_clip
):
    client, _ = staff_client
    job = start(project, long_clip, end=10)
    wait_for(lambda: executor.inner.poll(job.call_id).status is CallStatus.RUNNING, what="the call")

    page = client.get(change_url(job)).content.decode()
    assert "<strong>running</strong>" in page and RECONCILE_BUTTON not in page

    executor.fault = "down"
    page = client.get(change_url(job)).content.decode()
    assert "Unavailable: " in page and RECONCILE_BUTTON not in page

    executor.fault = None
    executor.inner.cancel(job.call_id)  # the platform killed it; nobody has looked since
    wait_for(lambda: executor.inner.poll(job.call_id).status is CallStatus.TERMINATED, what="the end")
    page = client.get(change_url(job)).content.decode()
    assert re.search(r"<strong>terminated</strong>.*— the job is still Processing at \d+ %\. " + RECONCILE_BUTTON, page)


@pytest.mark.parametrize(
    ("call", "status", "said"),
    [
        ("finished_call", ExportStatus.COMPLETE, "completed — the job is now Complete."),
        ("failed_call", ExportStatus.ERROR, "failed — the job is now Error (No object"),
    ],
)
def test_reconcile_now_reconciles_the_job_as_the_executor_says_and_says_what_happened(
    request, staff_client, call, status, said
):
    job = request.getfixturevalue(call)
    _, admin = staff_client
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    token = csrf_token_of_the_reconcile_form(client.get(change_url(job)).content.decode())

    response = client.post(reconcile_url(job), {"csrfmiddlewaretoken": token})

    assert (response.status_code, response["Location"]) == (302, change_url(job))
    job.refresh_from_db()
    assert job.status == status
    assert job.events.filter(trigger=Trigger.ADMIN, kind={"complete": "completed"}.get(status, "failed")).exists()
    page = client.get(change_url(job)).content.decode()
    assert f"Reconciled {job.pk.hex[:8]}: {said}" in page
    assert RECONCILE_BUTTON not in page


def test_reconcile_now_changes_nothing_on_a_get_without_a_csrf_token_or_for_non_staff(
    staff_client, owner_client, finished_call
):
    _, admin = staff_client
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    url = reconcile_url(finished_call)

    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 403  # no CSRF token
    response = owner_client.post(url)  # signed in, not staff
    assert response.status_code == 302 and "/admin/login/" in response["Location"]

    finished_call.refresh_from_db()
    assert finished_call.status == ExportStatus.PROCESSING
    assert not finished_call.events.filter(trigger=Trigger.ADMIN).exists()


def test_staff_who_may_only_view_jobs_see_the_disagreement_but_no_button_and_cannot_reconcile(finished_call):
    viewer = get_user_model().objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_exportjob"))
    client = Client()
    client.force_login(viewer)

    page = client.get(change_url(finished_call)).content.decode()
    assert re.search(r"<strong>succeeded</strong>\s+— the job is still Processing at 0 %\.", page)
    assert RECONCILE_BUTTON not in page and 'id="reconcile-now"' not in page
    assert client.post(reconcile_url(finished_call)).status_code == 403
    finished_call.refresh_from_db()
    assert finished_call.status == ExportStatus.PROCESSING


# The timeline


def test_timeline_times_read_to_the_second_in_the_admins_time_zone(staff_client, project, settings):
    settings.TIME_ZONE = "America/New_York"
    client, _ = staff_client
    job = ExportJobFactory(project=project)
    for second in (4, 9):
        event = ExportJobEvent.objects.create(job=job, kind="created", trigger=Trigger.VIEW)
        ExportJobEvent.objects.filter(pk=event.pk).update(created_at=datetime(2026, 11, 25, 22, 21, second, tzinfo=UTC))

    page = client.get(change_url(job)).content.decode()

    assert '<time datetime="2026-11-25T22:21:04+00:00" title="EST">2026-11-25 17:21:04</time>' in page
    assert ">2026-11-25 17:21:09</time>" in page


def test_a_progress_milestone_says_the_percent_its_data_holds(staff_client, project):
    client, _ = staff_client
    job = ExportJobFactory(project=project, status=ExportStatus.PROCESSING, progress=99)
    ExportJobEvent.objects.create(job=job, kind="progress", trigger="view", message="50 %", data={"percent": 50})
    ExportJobEvent.objects.create(job=job, kind="progress", trigger="view", message="75 %", data={"percent": 99})

    page = client.get(change_url(job)).content.decode()

    assert "75 % (reached 99 %)" in page  # the milestone crossed, and the percent the data says was reached
    assert "50 % (reached" not in page and re.search(r'<td class="field-text">\s*<p>50 %</p>', page)


# The changelist


def test_the_changelist_shows_short_ids_with_the_full_ones_in_titles(staff_client, project):
    client, _ = staff_client
    call_id = "local-" + "d" * 32
    job = ExportJobFactory(project=project, status=ExportStatus.PROCESSING, call_id=call_id)
    changelist = reverse("admin:exports_exportjob_changelist")

    page = client.get(changelist).content.decode()

    assert f'<a href="{change_url(job)}"><span title="{job.pk}">{job.pk.hex[:8]}</span></a>' in page
    assert f'<span title="{call_id}">local-dddddddd…</span>' in page
    assert f">{job.pk}<" not in page and f">{call_id}<" not in page
    assert change_url(job) in client.get(changelist, {"q": job.pk.hex[:8]}).content.decode()  # findable as shown

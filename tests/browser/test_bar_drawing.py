"""
One drawing of a bar: for the same job's JSON, the bar the server renders, the bar the script clones from the
page's <template> and fills, and the tray's bar once the script has taken it over are the same markup.
"""

import pytest

from ..servers import AppServer
from .conftest import BrowserSession

# Jobs in every state a bar shows, made up in the server's database. Their checks are claimed a day ahead, so
# nothing reconciles the made-up calls while the test looks.
MADE_UP_JOBS = """
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from exports.models import ErrorReason, ExportJob, WorkingVideo
from projects.models import Project

owner = get_user_model().objects.get(username="demo")
demo = Project.objects.get(owner=owner, name="Demo project")
other = Project.objects.create(owner=owner, name="Second <project> & co")
now = timezone.now()
later = now + timedelta(days=1)


def job(project, kind, status, **fields):
    if status in ("pending", "processing"):
        fields.update(call_id="local-made-up", progress_checked_at=later, executor_checked_at=later)
    else:
        fields.setdefault("finished_at", now)
    return ExportJob.objects.create(
        owner=owner, project=project, kind=kind, backend="local", status=status, params={}, **fields
    )


job(demo, "multi_clip", "pending")
job(demo, "framing_ai", "pending", stage="queued", message="Queued: 1 export ahead")
job(demo, "overlay", "processing", progress=37, stage="rendering", message="Rendering <clip> 2 & 3", progress_at=now)
job(other, "multi_clip", "processing", progress=80, message="Uploading", cancel_requested_at=now)
done = job(other, "framing_ai", "complete", progress=100)
WorkingVideo.objects.create(
    project=other, export_job=done, media="made-up.mp4", duration=3, width=320, height=180, size=1
)
job(other, "overlay", "error", progress=12, error_reason=ErrorReason.FAILED, error_message="ffmpeg said no")
retry = job(demo, "overlay", "cancelled", progress=5)
job(demo, "multi_clip", "error", error_reason=ErrorReason.LOST, retried_as=retry)
"""

# [job id, the server's bar, the script's bar, the tray's bar], each as a comparable shape: tag, attributes (the
# style as the browser reads it) and children, whitespace between tags left out.
THREE_DRAWINGS = """html => {
  const shape = (node) => {
    if (node.nodeType === Node.TEXT_NODE) return node.textContent.trim() ? node.textContent : null;
    const attributes = Array.from(node.attributes, (attribute) => [
      attribute.name,
      attribute.name === "style" ? node.style.cssText : attribute.value,
    ]).sort();
    return [node.tagName, attributes, Array.from(node.childNodes, shape).filter((child) => child !== null)];
  };
  const served = new DOMParser().parseFromString(html, "text/html");
  const jobs = JSON.parse(served.getElementById("export-tray-jobs").textContent);
  const bar = (root, id) => root.querySelector('#export-tray .export-bar[data-job-id="' + id + '"]');
  return jobs.map((job) => [
    job.id,
    shape(bar(served, job.id)),
    shape(window.exportTray.draw(job)),
    shape(bar(document, job.id)),
  ]);
}"""


@pytest.fixture
def made_up_server(tmp_path):
    server = AppServer(tmp_path)
    server.prepare_demo()
    server.manage("shell", "-c", MADE_UP_JOBS)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("width", [1366, 375])
def test_the_server_and_the_script_draw_the_same_bar_for_every_state(chromium, made_up_server, width):
    person = BrowserSession(chromium, made_up_server, width=width)
    try:
        person.sign_in()
        page = person.page
        served = page.goto(f"{made_up_server.url}/exports/")
        page.wait_for_function("window.exportTray && window.exportTray.jobs.size === 8")

        drawings = page.evaluate(THREE_DRAWINGS, served.text())

        assert len(drawings) == 8
        for job_id, server_bar, script_bar, tray_bar in drawings:
            assert server_bar is not None and script_bar == server_bar, job_id
            assert tray_bar == server_bar, job_id
        messages = page.eval_on_selector_all("#export-tray .bar-message", "spans => spans.map(s => s.textContent)")
        assert {"Starting…", "Queued: 1 export ahead", "Rendering <clip> 2 & 3", "Cancelling…", "Done."} <= set(
            messages
        )
        assert "Cancelled." in messages and any("Something went wrong while rendering" in m for m in messages)
        assert person.errors == []
    finally:
        person.close()

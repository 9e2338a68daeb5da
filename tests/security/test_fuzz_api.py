"""
Property-based fuzzing of every JSON endpoint: whatever the body, the answer is a clear 4xx (or a
success for a valid body), never a 500, and invalid input creates nothing.
"""

import json
import math
import uuid
from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from exports.events import secret_for
from exports.models import ExportJob, ExportStatus
from modal_jobs.schema import clip_ids
from projects import services as project_services

from ..factories import ProjectFactory

pytestmark = pytest.mark.django_db

FUZZ = settings.get_profile("fuzz")

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 0.5, 1, 2, 19.9, 20, 95, -1, 1e9]),
)
# Near-valid params: the right keys with wrong, extreme or valid values, so validation is exercised deep down.
clip_ranges = st.fixed_dictionaries(
    {
        "clip_id": st.one_of(st.just("CLIP"), st.just("FOREIGN"), numbers, st.text(max_size=5)),
        "start": numbers,
        "end": numbers,
    }
)
params_by_kind = {
    "multi_clip": st.fixed_dictionaries(
        {
            "clips": st.one_of(
                st.lists(clip_ranges, max_size=4), st.just([{"clip_id": "CLIP", "start": 0, "end": 1}] * 10_000)
            )
        },
        optional={"height": numbers, "frame_rate": numbers, "unknown": json_values},
    ),
    "framing_ai": st.fixed_dictionaries(
        {
            "clip_id": st.one_of(st.just("CLIP"), st.just("FOREIGN"), numbers),
            "aspect": st.one_of(st.sampled_from(["9:16", "1:1", "0:0", "９:１６", "16/9", ""]), st.text(max_size=8)),
            "height": numbers,
            "keyframes": st.lists(st.fixed_dictionaries({"t": numbers, "x": numbers}), max_size=4),
        }
    ),
    "overlay": st.fixed_dictionaries(
        {
            "clip_id": st.one_of(st.just("CLIP"), st.just("FOREIGN"), numbers),
            "highlights": st.lists(
                st.fixed_dictionaries(
                    {"start": numbers, "end": numbers, "x": numbers, "y": numbers, "radius": numbers},
                    optional={"color": st.text(max_size=8)},
                ),
                max_size=3,
            ),
        }
    ),
}
# Valid params (the clip is 2 s long), so that a good share of examples must succeed.
seconds = st.floats(min_value=0, max_value=0.9)
valid_params_by_kind = {
    "multi_clip": st.builds(
        lambda starts, height: (
            {"clips": [{"clip_id": "CLIP", "start": start, "end": start + 1} for start in starts]}
            | ({"height": height} if height else {})
        ),
        st.lists(seconds, min_size=1, max_size=3),
        st.none() | st.integers(min_value=144, max_value=2160),
    ),
    "framing_ai": st.fixed_dictionaries(
        {
            "clip_id": st.just("CLIP"),
            "aspect": st.sampled_from(["9:16", "1:1", "4:5", "16:9"]),
            "height": st.integers(min_value=144, max_value=2160),
            "keyframes": st.lists(
                st.fixed_dictionaries(
                    {"t": st.floats(min_value=0, max_value=2), "x": st.floats(min_value=0, max_value=1)}
                ),
                min_size=1,
                max_size=5,
                unique_by=lambda keyframe: keyframe["t"],
            ),
        }
    ),
    "overlay": st.fixed_dictionaries(
        {
            "clip_id": st.just("CLIP"),
            "highlights": st.lists(
                st.builds(
                    lambda start, x, y, radius: {"start": start, "end": start + 1, "x": x, "y": y, "radius": radius},
                    seconds,
                    st.floats(min_value=0, max_value=1),
                    st.floats(min_value=0, max_value=1),
                    st.floats(min_value=0.01, max_value=0.5),
                ),
                min_size=1,
                max_size=3,
            ),
        }
    ),
}
bodies = st.one_of(
    st.sampled_from(list(valid_params_by_kind)).flatmap(
        lambda kind: st.builds(lambda params: {"kind": kind, "params": params}, valid_params_by_kind[kind])
    ),
    json_values,
    st.builds(
        lambda kind, params: {"kind": kind, "params": params}, st.sampled_from(list(params_by_kind)), json_values
    ),
    st.sampled_from(list(params_by_kind)).flatmap(
        lambda kind: st.builds(lambda params: {"kind": kind, "params": params}, params_by_kind[kind])
    ),
)


def substitute(value, clip_id, foreign_id):
    """Put real clip ids where the strategies left placeholders."""
    if value == "CLIP":
        return clip_id
    if value == "FOREIGN":
        return foreign_id
    if isinstance(value, dict):
        return {key: substitute(item, clip_id, foreign_id) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, clip_id, foreign_id) for item in value]
    return value


@pytest.fixture
def fuzz_setup(recording_executor, owner, outsider, video_path):
    project = ProjectFactory(owner=owner)
    clip = project_services.add_clip(project=project, path=str(video_path))
    foreign = project_services.add_clip(project=ProjectFactory(owner=outsider), path=str(video_path))
    client = Client()
    client.force_login(owner)
    return client, project, clip, foreign, recording_executor


def all_finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(all_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(all_finite(item) for item in value)
    return True


@FUZZ
@given(body=bodies)
def test_starting_an_export_answers_every_body_with_a_clear_status_and_creates_nothing_when_invalid(fuzz_setup, body):
    client, project, clip, foreign, executor = fuzz_setup
    body = substitute(body, clip.pk, foreign.pk)
    rows_before = ExportJob.objects.count()
    spawned_before = len(executor.spawned)

    response = client.post(
        reverse("exports:api_start", args=[project.pk]), data=json.dumps(body), content_type="application/json"
    )

    assert response.status_code in (201, 400), response.content[:300]
    answer = response.json()
    if response.status_code == 400:
        assert answer["error"]
        assert ExportJob.objects.count() == rows_before
        assert len(executor.spawned) == spawned_before
    else:
        job = ExportJob.objects.get(pk=answer["job"]["id"])
        assert all_finite(job.params)
        assert clip_ids(job.kind, job.params) and set(clip_ids(job.kind, job.params)) == {clip.pk}
        assert len(executor.spawned) == spawned_before + 1
        # Free the (project, kind) slot for the next example.
        ExportJob.objects.filter(pk=job.pk).update(status=ExportStatus.CANCELLED)


@settings(parent=FUZZ, max_examples=60)
@given(
    body=st.sampled_from(list(valid_params_by_kind)).flatmap(
        lambda kind: st.builds(lambda params: {"kind": kind, "params": params}, valid_params_by_kind[kind])
    )
)
def test_valid_params_of_every_kind_start_an_export(fuzz_setup, body):
    """Guards the fuzzer: the valid branch above really is valid, so the fuzz proves successes as well as refusals."""
    client, project, clip, _, _ = fuzz_setup
    body = substitute(body, clip.pk, None)
    response = client.post(
        reverse("exports:api_start", args=[project.pk]), data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 201, response.content[:300]
    ExportJob.objects.filter(pk=response.json()["job"]["id"]).update(status=ExportStatus.CANCELLED)


@pytest.mark.parametrize("action", ["api_cancel", "api_retry", "api_dismiss", "api_detail"])
@FUZZ
@given(body=json_values)
def test_job_actions_ignore_junk_bodies_and_never_fail(fuzz_setup, body, action):
    client, project, clip, _, _ = fuzz_setup
    job = ExportJob.objects.filter(project=project).first() or ExportJob.objects.create(
        owner=project.owner, project=project, kind="overlay", backend="local", status=ExportStatus.CANCELLED
    )
    url = reverse(f"exports:{action}", args=[job.pk])
    if action == "api_detail":
        response = client.get(url, data={"q": json.dumps(body)[:200]})
    else:
        response = client.post(url, data=json.dumps(body), content_type="application/json")
    assert response.status_code in (200, 201, 400, 404, 409, 429), response.content[:300]
    assert response["Content-Type"] == "application/json"
    ExportJob.objects.exclude(pk=job.pk).filter(project=project).update(status=ExportStatus.CANCELLED)


@FUZZ
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_bodies_that_are_not_json_are_400(fuzz_setup, raw):
    client, project, _, _, _ = fuzz_setup
    rows_before = ExportJob.objects.count()
    response = client.post(reverse("exports:api_start", args=[project.pk]), data=raw, content_type="application/json")
    assert response.status_code == 400
    assert ExportJob.objects.count() == rows_before


def test_an_oversized_body_is_400(fuzz_setup):
    client, project, clip, _, _ = fuzz_setup
    body = {"kind": "overlay", "params": {"clip_id": clip.pk, "highlights": [], "padding": "x" * 3_000_000}}
    response = client.post(
        reverse("exports:api_start", args=[project.pk]), data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {"error": "Bad request."}
    assert ExportJob.objects.count() == 0


def test_a_deeply_nested_body_is_400(fuzz_setup):
    client, project, _, _, _ = fuzz_setup
    response = client.post(
        reverse("exports:api_start", args=[project.pk]),
        data="[" * 100_000 + "]" * 100_000,
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json() == {"error": "The body is nested too deeply."}


def test_a_body_sent_as_a_form_is_400(fuzz_setup):
    client, project, _, _, _ = fuzz_setup
    response = client.post(reverse("exports:api_start", args=[project.pk]), data={"kind": "overlay"})
    assert response.status_code == 400
    assert "application/json" in response.json()["error"]


def processing_job(project) -> ExportJob:
    return ExportJob.objects.filter(project=project, kind="overlay").first() or ExportJob.objects.create(
        owner=project.owner, project=project, kind="overlay", backend="local", status=ExportStatus.PROCESSING
    )


@FUZZ
@given(body=json_values, event_type=st.sampled_from(["progress", "result", None]))
def test_worker_events_signed_for_the_job_but_junk_inside_never_fail(fuzz_setup, body, event_type):
    """The signature only proves who sent it: a worker's junk (a bug) is refused with a 4xx, never a 500."""
    _, project, _, _, _ = fuzz_setup
    job = processing_job(project)
    event = {"type": event_type, "job_id": str(job.pk), "record": body, "result": body} if event_type else body
    raw = json.dumps(event).encode()
    message_id = f"msg_{uuid.uuid4().hex}"
    sent_at = datetime.now(UTC)
    response = Client().post(
        reverse("exports:api_worker_event", args=[job.pk]),
        data=raw,
        content_type="application/json",
        headers={
            "webhook-id": message_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": Webhook(secret_for(job.pk)).sign(message_id, sent_at, raw.decode()),
        },
    )
    assert response.status_code in (200, 400, 413), response.content[:300]
    assert response["Content-Type"] == "application/json"


@FUZZ
@given(
    headers=st.dictionaries(
        st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]), st.text(max_size=80)
    ),
    raw=st.binary(max_size=200),
)
def test_worker_events_with_junk_signatures_are_refused(fuzz_setup, headers, raw):
    _, project, _, _, _ = fuzz_setup
    job = processing_job(project)
    headers = {name: value.encode("ascii", "ignore").decode() for name, value in headers.items()}
    response = Client().post(
        reverse("exports:api_worker_event", args=[job.pk]), data=raw, content_type="application/json", headers=headers
    )
    assert response.status_code == 401, response.content[:300]
    assert ExportJob.objects.get(pk=job.pk).progress == 0

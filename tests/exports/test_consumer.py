"""ExportProgressConsumer through Channels' WebsocketCommunicator, with the real local executor."""

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from exports import records, services
from exports.models import ErrorReason, ExportJob, ExportStatus
from exports_project.asgi import application
from projects import services as project_services
from testing_support.faults import CountingStore
from testing_support.loopback import session_cookie

from ..factories import ExportJobFactory, ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


async def communicator(user=None, *, origin="http://localhost", path="/ws/exports/"):
    headers = [(b"origin", origin.encode()), (b"host", b"localhost")]
    if user is not None:
        headers.append((b"cookie", (await sync_to_async(session_cookie)(user)).encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def connect(user, **options):
    socket = await communicator(user, **options)
    connected, _ = await socket.connect()
    assert connected
    snapshot = await socket.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot"
    return socket, snapshot


async def receive_until(socket, predicate, *, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = await socket.receive_json_from(timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        if predicate(message):
            return message
    raise AssertionError("no matching message")


async def test_an_anonymous_socket_is_accepted_then_closed_with_4401():
    socket = await communicator()
    connected, _ = await socket.connect()
    assert connected
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}


async def test_a_foreign_origin_is_refused(owner):
    socket = await communicator(owner, origin="http://evil.example")
    connected, _ = await socket.connect()
    assert not connected


async def test_the_snapshot_holds_the_users_tray_and_nothing_of_anyone_else(owner, project, outsider):
    active = await sync_to_async(ExportJobFactory)(project=project, status=ExportStatus.PROCESSING)
    finished = await sync_to_async(ExportJobFactory)(
        project=project, kind="overlay", status=ExportStatus.ERROR, error_reason=ErrorReason.FAILED
    )
    await sync_to_async(ExportJob.objects.filter(pk=finished.pk).update)(finished_at=timezone.now())
    await sync_to_async(ExportJobFactory)(project=await sync_to_async(ProjectFactory)(owner=outsider))
    socket, snapshot = await connect(owner)
    assert {job["id"] for job in snapshot["jobs"]} == {str(active.pk), str(finished.pk)}
    assert snapshot["cursor"]
    await socket.disconnect()


async def test_a_reconnect_with_the_cursor_also_gets_what_changed_since(owner, project):
    job = await sync_to_async(ExportJobFactory)(project=project, status=ExportStatus.CANCELLED)
    await sync_to_async(ExportJob.objects.filter(pk=job.pk).update)(finished_at=timezone.now())
    socket, first = await connect(owner)
    await socket.disconnect()
    assert [item["id"] for item in first["jobs"]] == [str(job.pk)]
    await sync_to_async(services.dismiss_export)(job)  # changes while the socket is away, and leaves the tray

    socket, plain = await connect(owner)
    await socket.disconnect()
    assert plain["jobs"] == []
    socket, caught_up = await connect(owner, path=f"/ws/exports/?cursor={first['cursor']}")
    await socket.disconnect()
    assert [(item["id"], item["status"]) for item in caught_up["jobs"]] == [(str(job.pk), "cancelled")]


async def test_malformed_frames_get_errors_and_the_socket_stays_up(owner):
    socket, _ = await connect(owner)
    await socket.send_to(text_data="this is not json")
    assert (await socket.receive_json_from())["error"] == "That frame is not valid JSON."
    await socket.send_to(bytes_data=b"\x00\xff")
    assert (await socket.receive_json_from())["error"] == "Send JSON text frames."
    await socket.send_to(text_data=json.dumps({"type": "ping", "padding": "x" * 10_000}))
    assert (await socket.receive_json_from())["error"] == "Frames are limited to 4096 bytes."
    await socket.send_to(text_data=json.dumps(["subscribe", "everything"]))
    assert (await socket.receive_json_from())["type"] == "error"
    await socket.send_to(text_data=json.dumps({"type": "ping"}))
    assert await socket.receive_json_from() == {"type": "pong"}
    await socket.disconnect()


async def test_the_socket_delivers_the_workers_real_progress_to_completion(
    executor, owner, project, demo_video_paths, settings
):
    settings.EXPORTS_SOCKET_TICK_SECONDS = 0.5
    clips = [
        await sync_to_async(project_services.add_clip)(project=project, path=str(path)) for path in demo_video_paths
    ]
    socket, _ = await connect(owner)
    params = {"clips": [{"clip_id": clip.pk, "start": 0, "end": 20} for clip in clips]}
    job = await sync_to_async(services.start_export)(owner=owner, project=project, kind="multi_clip", params=params)

    seen = []

    def record(message):
        if message["type"] == "job" and message["job"]["id"] == str(job.pk):
            seen.append(message["job"])
            return message["job"]["status"] not in ("pending", "processing")
        return False

    await receive_until(socket, record, timeout=120)
    await socket.disconnect()
    assert seen[-1]["status"] == "complete" and seen[-1]["working_video"]
    percents = [item["progress"] for item in seen]
    assert percents == sorted(percents)
    assert len(set(percents) - {0, 100}) >= 5, percents
    logged = {
        min(99, json.loads(line)["percent"])  # the backend shows a worker's 100 as 99 until it has finalized
        for line in open(records.object_store().path(f"exports/{job.pk}/progress.log"))
    }
    assert set(percents) - {100} <= logged


async def test_another_users_changes_never_reach_a_socket(executor, owner, project, outsider, clip):
    socket, _ = await connect(outsider)
    params = {"clips": [{"clip_id": clip.pk, "start": 0, "end": 1}]}
    job = await sync_to_async(services.start_export)(owner=owner, project=project, kind="multi_clip", params=params)
    await sync_to_async(services.cancel_export)(job)
    assert await socket.receive_nothing(timeout=1.5)
    await socket.disconnect()


async def test_ten_sockets_on_one_job_cost_what_one_does(executor, owner, project, long_clip, settings, monkeypatch):
    """Each socket ticks five times a second; the claims keep executor polls and store reads at one per interval."""
    settings.EXPORTS_SOCKET_TICK_SECONDS = 0.2
    settings.EXPORTS_PROGRESS_INTERVAL_SECONDS = 1
    settings.EXPORTS_EXECUTOR_INTERVAL_SECONDS = 2
    store = CountingStore(records.object_store(), counted=lambda key: key.endswith("/progress.json"))
    monkeypatch.setattr(records, "object_store", lambda: store)
    params = {"clips": [{"clip_id": long_clip.pk, "start": 0, "end": 10}]}
    job = await sync_to_async(services.start_export)(owner=owner, project=project, kind="multi_clip", params=params)
    sockets = [(await connect(owner))[0] for _ in range(10)]
    await asyncio.sleep(1)
    polls_before, reads_before = executor.calls["poll"], store.reads

    window = 6.0
    await asyncio.sleep(window)

    polls = executor.calls["poll"] - polls_before
    reads = store.reads - reads_before
    for socket in sockets:
        await socket.disconnect()
    assert (await sync_to_async(ExportJob.objects.get)(pk=job.pk)).status == ExportStatus.PROCESSING
    print(f"10 sockets, {window} s: {polls} executor polls, {reads} progress reads")
    assert 2 <= polls <= window / 2 + 1, polls  # ten sockets ticking unclaimed would poll about 300 times
    assert 4 <= reads <= window / 1 + 1, reads


async def test_the_socket_pings_and_its_background_tasks_end_on_disconnect(owner, settings):
    settings.EXPORTS_SOCKET_PING_SECONDS = 0.2
    socket, _ = await connect(owner)
    assert await socket.receive_json_from(timeout=2) == {"type": "ping"}

    def socket_tasks():
        return [
            task for task in asyncio.all_tasks() if task.get_name().startswith("export-socket-") and not task.done()
        ]

    assert len(socket_tasks()) == 2
    await socket.disconnect()
    await asyncio.sleep(0.1)
    assert socket_tasks() == []


async def test_signing_out_in_another_tab_closes_the_sessions_sockets_with_4401(owner):
    client = await sync_to_async(Client)()
    await sync_to_async(client.force_login)(owner)
    cookie = f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie.encode())]
    socket = WebsocketCommunicator(application, "/ws/exports/", headers=headers)
    assert (await socket.connect())[0]
    assert (await socket.receive_json_from())["type"] == "snapshot"
    other_session, _ = await connect(owner)  # the same user in another browser stays connected

    await sync_to_async(client.post)("/accounts/logout/")

    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    assert await other_session.receive_nothing(timeout=0.5)
    await other_session.disconnect()


@pytest.mark.parametrize(
    "cursor", ["0001-01-01T00:00:00%2B01:00", "9999-12-31T23:59:59-01:00", "2000-01-01T00:00:00Z", "not-a-time"]
)
async def test_a_cursor_outside_the_databases_range_is_no_cursor_and_the_socket_stays_up(owner, cursor):
    """Before: year 1 at UTC+1 or year 9999 at UTC-1 overflowed and closed the socket with 1011."""
    socket, snapshot = await connect(owner, path=f"/ws/exports/?cursor={cursor}")

    await socket.send_to(text_data=json.dumps({"type": "ping"}))

    assert snapshot["jobs"] == []
    assert await socket.receive_json_from() == {"type": "pong"}
    await socket.disconnect()


async def test_brackets_nested_thousands_deep_get_an_error_and_the_socket_stays_up(owner):
    """Before: RecursionError closed the socket with 1011 and a traceback."""
    socket, _ = await connect(owner)

    await socket.send_to(text_data="[" * 2000 + "]" * 2000)

    assert (await socket.receive_json_from())["error"] == "That frame is not valid JSON."
    await socket.send_to(text_data=json.dumps({"type": "ping"}))
    assert await socket.receive_json_from() == {"type": "pong"}
    await socket.disconnect()


@pytest.mark.parametrize(
    ("origin", "host", "accepted"),
    [
        ("http://localhost", "localhost", True),
        ("http://localhost:8000", "localhost:8000", True),
        ("https://localhost", "localhost:443", True),
        ("http://localhost:1", "localhost:8000", False),  # another service on the same host
        ("http://localhost:8000", "localhost", False),
        ("https://localhost:8000", "localhost:8000", True),
        ("null", "localhost", False),
    ],
)
async def test_a_socket_is_accepted_only_from_the_sites_own_origin_port_included(owner, origin, host, accepted):
    """Before: the Origin check compared host names only, so http://127.0.0.1:1 was accepted."""
    cookie = (await sync_to_async(session_cookie)(owner)).encode()
    headers = [(b"origin", origin.encode()), (b"host", host.encode()), (b"cookie", cookie)]
    socket = WebsocketCommunicator(application, "/ws/exports/", headers=headers)

    connected, _ = await socket.connect()

    assert connected is accepted
    await socket.disconnect()


@pytest.mark.parametrize("revoke", ["deactivated", "password changed", "deactivated by an update, exports running"])
async def test_an_open_socket_closes_once_its_users_access_is_revoked(owner, project, settings, revoke):
    """
    Before: a deactivated user, or one whose password changed, kept receiving frames, completion included.
    A saved user reaches their sockets at once; a change that sends no signal (an update) is found by the
    next tick of a socket whose exports run.
    """
    settings.EXPORTS_SOCKET_TICK_SECONDS = 0.1
    if revoke.endswith("exports running"):
        await sync_to_async(ExportJobFactory)(project=project, status=ExportStatus.PROCESSING)
    socket, _ = await connect(owner)

    if revoke == "deactivated":
        owner.is_active = False
        await sync_to_async(owner.save)()
    elif revoke == "password changed":
        owner.set_password("a new one")
        await sync_to_async(owner.save)()
    else:
        await sync_to_async(type(owner).objects.filter(pk=owner.pk).update)(is_active=False)

    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}


async def test_many_sockets_of_one_session_share_one_tick_a_second(owner, project, settings, monkeypatch):
    """Twenty tabs (or a crowd) of one session cost one session check and reconcile per tick, not twenty."""
    from exports import consumers

    settings.EXPORTS_SOCKET_TICK_SECONDS = 0.3
    await sync_to_async(ExportJobFactory)(project=project, status=ExportStatus.PROCESSING)
    ticks = []
    real_tick = consumers.tick_socket
    monkeypatch.setattr(consumers, "tick_socket", lambda *args: ticks.append(1) or real_tick(*args))
    cookie = (await sync_to_async(session_cookie)(owner)).encode()
    sockets = []
    for _ in range(20):
        socket = WebsocketCommunicator(
            application,
            "/ws/exports/",
            headers=[(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)],
        )
        assert (await socket.connect())[0]
        await socket.receive_json_from(timeout=5)
        sockets.append(socket)

    await asyncio.sleep(2.0)  # about six ticks of each socket

    for socket in sockets:
        await socket.disconnect()
    assert 3 <= len(ticks) <= 12, len(ticks)  # not 20 sockets x 6 ticks


async def test_an_open_socket_means_present_and_closing_it_means_away(owner):
    """Who gets an e-mail when an export ends: the owner with no page open, including one who just closed it."""
    from exports.models import NoticePreference

    def seen():
        preference = NoticePreference.objects.filter(user=owner).first()
        return preference is not None and preference.socket_seen_at is not None

    socket, _ = await connect(owner)
    assert await sync_to_async(seen)()

    await socket.disconnect()
    assert not await sync_to_async(seen)()


async def test_a_tick_in_flight_when_the_socket_closes_does_not_make_the_owner_present_again(
    owner, project, settings, monkeypatch
):
    """
    Before: a tick that had not yet noted presence when the socket closed noted it just after the departure,
    so an export ending within the next 15 s was told to no one (no page, and no e-mail either).
    """
    from types import SimpleNamespace

    from channels.auth import get_user

    from exports import consumers
    from exports.models import NoticePreference

    settings.EXPORTS_SOCKET_TICK_SECONDS = 0.1
    await sync_to_async(ExportJobFactory)(project=project, status=ExportStatus.PROCESSING)  # so the socket ticks
    checking = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow_session_check(scope):
        loop.call_soon_threadsafe(checking.set)
        time.sleep(0.5)  # the tick is between its start and its note of presence
        return get_user.func(scope)

    monkeypatch.setattr(consumers, "get_user", SimpleNamespace(func=slow_session_check))
    socket, _ = await connect(owner)
    await asyncio.wait_for(checking.wait(), timeout=5)
    await socket.disconnect()
    await asyncio.sleep(0.8)  # the tick has long ended

    preference = await NoticePreference.objects.filter(user=owner).afirst()
    assert preference.socket_seen_at is None


@pytest.mark.parametrize("cancel_requested", [False, True], ids=["running", "cancel-pending"])
async def test_a_socket_leaves_to_its_worker_a_job_the_worker_keeps_telling_of(
    owner, project, settings, monkeypatch, cancel_requested
):
    """
    Before: every tick queried every job it followed, though the worker's events kept them current; with fifty
    of them that was half of what one daphne did. A pending cancel waits on the executor, so those are looked at.
    """
    from exports import consumers

    from ..helpers import send_worker_event
    from .test_worker_events import CALL_ID, progress_event

    settings.EXPORTS_SOCKET_TICK_SECONDS = 0.1
    job = await sync_to_async(ExportJobFactory)(
        project=project,
        status=ExportStatus.PROCESSING,
        call_id=CALL_ID,
        cancel_requested_at=timezone.now() if cancel_requested else None,
    )
    looked_at = []
    reconcile_jobs = consumers.reconcile_jobs

    def spy(jobs, **options):
        checked = reconcile_jobs(jobs, **options)
        looked_at.extend(checked_job.pk for checked_job, _ in checked)
        return checked

    monkeypatch.setattr(consumers, "reconcile_jobs", spy)
    socket, _ = await connect(owner)
    await sync_to_async(send_worker_event)(job.pk, progress_event(job, percent=20))
    await asyncio.sleep(0.15)
    looked_at.clear()
    for percent in range(21, 36):  # the worker tells every 0.1 s for 1.5 s: 15 ticks
        await sync_to_async(send_worker_event)(job.pk, progress_event(job, percent=percent))
        await asyncio.sleep(0.1)
    while_told = len(looked_at)
    await asyncio.sleep(0.6)  # the worker goes quiet
    await socket.disconnect()

    if cancel_requested:
        assert while_told >= 10
    else:
        assert while_told == 0
        assert len(looked_at) > while_told, "the ticks look again once the worker is quiet"

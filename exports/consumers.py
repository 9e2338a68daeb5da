"""
Live progress over a WebSocket.

On connect the user gets a snapshot of their jobs (the same QuerySet as the API
and the tray) and a cursor; a client reconnecting with `?cursor=` also gets every
job that changed since, because Channels delivers at most once and never
replays. Changes then arrive as the owner's group messages. While the user has
active jobs the consumer ticks and calls the same `reconcile_jobs` as views, on
a thread pool of its own (never on the single thread database_sync_to_async
uses), so a hanging executor cannot stall other sockets' database work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from . import events
from .broadcast import user_group
from .executor import Budget
from .models import ACTIVE_STATUSES, TRAY_RETENTION, TRAY_SIZE, ExportJob, Trigger
from .notices import left_a_socket, seen_on_a_socket
from .reconcile import reconcile_jobs
from .serializers import serialize_job

logger = logging.getLogger(__name__)

UNAUTHENTICATED = 4401
MAX_FRAME_BYTES = 4096


def parse_cursor(query_string: bytes, *, now: datetime) -> datetime | None:
    """
    The client's cursor, as an aware UTC time no older than the tray's retention: what changed before
    that has left the tray anyway, and an older cursor would only make a larger snapshot. A cursor
    that is not one, or lies outside the database's range (year 1 at UTC+1), is no cursor.
    """
    values = parse_qs(query_string.decode(errors="replace")).get("cursor")
    if not values:
        return None
    try:
        cursor = datetime.fromisoformat(values[0])
        if cursor.tzinfo is None:
            return None
        cursor = cursor.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return min(max(cursor, now - TRAY_RETENTION), now)


def snapshot(user, cursor: datetime | None) -> tuple[list[dict], str]:
    """Return the user's tray jobs (plus any job changed since `cursor`) and the cursor to hand back next time."""
    taken_at = timezone.now()  # before the query: a change racing it shows up now or in the next catch-up
    seen_on_a_socket(user.pk, taken_at)
    shown = ExportJob.objects.tray_of(user, now=taken_at)
    if cursor is not None:
        seen = {job.pk for job in shown}
        changed = (
            ExportJob.objects.owned_by(user)
            .filter(updated_at__gt=cursor)
            .for_serializing()
            .order_by("-updated_at")[:TRAY_SIZE]
        )
        shown += [job for job in changed if job.pk not in seen]
    return [serialize_job(job) for job in shown], cursor_for(taken_at)


def cursor_for(moment: datetime) -> str:
    """An opaque-to-clients cursor: UTC ISO 8601 with a Z, so it survives a query string unescaped."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def tick_socket(scope, user, job_ids: list) -> list | None:
    """
    One tick of a socket, on a worker thread (never the one thread pages' database work shares): None when the
    session no longer signs its user in (deactivated, or the password changed: the auth hash no longer matches,
    as channels' get_user checks it), else reconcile the jobs it follows and return the ids still active.
    """
    close_old_connections()
    try:
        if not get_user.func(scope).is_authenticated:
            return None
        seen_on_a_socket(user.pk)  # a page of theirs is open: finished exports are told there, not by e-mail
        jobs = ExportJob.objects.started_by(user).to_reconcile().filter(pk__in=job_ids)
        checked = reconcile_jobs(jobs, trigger=Trigger.CONSUMER, budget=Budget.for_request())
        return [job.pk for job, _ in checked if job.is_active]
    finally:
        close_old_connections()


class SharedTicks:
    """
    One tick per session and interval in this process, whatever the number of its sockets (tabs, or a
    crowd of them): the same session gets the same answer, and the jobs' changes reach every socket of the
    user through its group anyway. Without this, 200 sockets of one user meant 200 session checks and
    reconciles a second, and every page of every other user waited behind them.
    """

    def __init__(self):
        self._running: dict[tuple, tuple[float, asyncio.Future, set]] = {}

    async def tick(self, scope, user, session_key, job_ids: list, *, interval: float) -> list | None:
        key = (user.pk, session_key)
        now = time.monotonic()
        started = self._running.get(key)
        if started is None or now - started[0] >= interval * 0.9 or not set(job_ids) <= started[2]:
            run = asyncio.ensure_future(sync_to_async(tick_socket, thread_sensitive=False)(scope, user, job_ids))
            started = (now, run, set(job_ids))
            self._running[key] = started
            run.add_done_callback(lambda _: self._forget_old(now - interval))
        return await asyncio.shield(started[1])

    async def settle(self, user_id, session_key) -> None:
        """Wait for the session's tick in flight, if any: the presence it notes must land before a departure."""
        started = self._running.get((user_id, session_key))
        if started is not None and not started[1].done():
            with contextlib.suppress(Exception):  # its failure was the tick's to report
                await asyncio.shield(started[1])

    def _forget_old(self, before: float) -> None:
        for key in [key for key, (at, run, _) in self._running.items() if at < before and run.done()]:
            del self._running[key]


shared_ticks = SharedTicks()


class ExportProgressConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        # Accept first: a close before accept reaches browsers as 1006, which the page cannot act on.
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=UNAUTHENTICATED)
            return
        self.user = user
        self.session_key = self.scope["session"].session_key
        self.group_name = user_group(user.pk)
        self.active_job_ids: set = set()
        self.told_by_worker_at: dict[str, float] = {}  # job id -> when its worker's own event last changed it
        self.tasks: list[asyncio.Task] = []
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        cursor = parse_cursor(self.scope.get("query_string", b""), now=timezone.now())
        jobs, cursor = await database_sync_to_async(snapshot)(user, cursor)
        self.active_job_ids = {job["id"] for job in jobs if job["status"] in ACTIVE_STATUSES}
        await self.send_json({"type": "snapshot", "jobs": jobs, "cursor": cursor})
        self.tasks = [
            asyncio.create_task(self.tick(), name=f"export-socket-tick:{self.channel_name}"),
            asyncio.create_task(self.ping(), name=f"export-socket-ping:{self.channel_name}"),
        ]

    async def disconnect(self, code):
        for task in getattr(self, "tasks", []):
            task.cancel()
        if hasattr(self, "group_name"):
            await self.channel_layer.group_discard(self.group_name, self.channel_name)
            await shared_ticks.settle(self.user.pk, self.session_key)
            await database_sync_to_async(left_a_socket)(self.user.pk)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """Answer what clients send; a malformed frame gets an error and the socket stays up."""
        if bytes_data is not None or text_data is None:
            await self.send_json({"type": "error", "error": "Send JSON text frames."})
            return
        if len(text_data) > MAX_FRAME_BYTES:
            await self.send_json({"type": "error", "error": f"Frames are limited to {MAX_FRAME_BYTES} bytes."})
            return
        try:
            message = json.loads(text_data)
        except (ValueError, RecursionError):  # RecursionError: brackets nested thousands deep
            await self.send_json({"type": "error", "error": "That frame is not valid JSON."})
            return
        if isinstance(message, dict) and message.get("type") == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.send_json({"type": "error", "error": 'Unknown message; the only one is {"type": "ping"}.'})

    async def job_changed(self, event):
        job = event["job"]
        if job["status"] in ACTIVE_STATUSES:
            self.active_job_ids.add(job["id"])
        else:
            self.active_job_ids.discard(job["id"])
        if event.get("from_worker") and not job["cancel_requested"]:
            self.told_by_worker_at[job["id"]] = time.monotonic()
        else:
            self.told_by_worker_at.pop(job["id"], None)  # a cancel waits on the executor: the ticks must look
        await self.send_json({"type": "job", "job": job})

    def jobs_to_look_at(self, interval: float) -> set:
        """
        The active jobs minus those whose worker told us of them within two ticks: the worker's events keep
        those up to date, and a look would find nothing due (reconcile.check_intervals backs off). Should the
        events stop, the jobs are looked at again two ticks later.
        """
        now = time.monotonic()
        told = {job_id for job_id, at in self.told_by_worker_at.items() if now - at < 2 * interval}
        return self.active_job_ids - told

    async def session_ended(self, event):
        """The user signed out of this socket's session (in another tab): tell the page to ask for a sign-in."""
        if event["session_key"] == self.session_key:
            await self.close(code=UNAUTHENTICATED)

    async def access_changed(self, event):
        """The user was saved (deactivated? a new password?): close unless the session still signs them in."""
        if await sync_to_async(tick_socket, thread_sensitive=False)(self.scope, self.user, []) is None:
            await self.close(code=UNAUTHENTICATED)

    async def tick(self):
        """
        While the user has active jobs: check the session, then reconcile them. An idle socket costs nothing
        a tick; a change to its user reaches it as access.changed, and so in production (Redis) from any process.
        """
        while True:
            interval = settings.EXPORTS_SOCKET_TICK_SECONDS
            await asyncio.sleep(interval)
            if not self.active_job_ids:
                continue
            checked = self.jobs_to_look_at(interval)  # may be none: the session is checked all the same
            try:
                still_active = await shared_ticks.tick(
                    self.scope, self.user, self.session_key, list(checked), interval=interval
                )
            except Exception:
                logger.exception("The tick of a socket of user %s failed", self.user.pk)
                continue
            if still_active is None:
                await self.close(code=UNAUTHENTICATED)
                return
            self.active_job_ids -= checked - {str(job_id) for job_id in still_active}

    async def ping(self):
        while True:
            await asyncio.sleep(settings.EXPORTS_SOCKET_PING_SECONDS)
            await self.send_json({"type": "ping"})


class WorkerEventConsumer(AsyncHttpConsumer):
    """
    POST /api/exports/<job_id>/events/ under daphne: the workers' signed events (exports/events.py).

    A machine's request has no use for Django's middleware (sessions, CSRF, messages), and under ASGI each
    sync middleware costs hops between the event loop and a thread: with fifty workers posting every second
    those hops, queued behind each other on one loop, were most of an event's latency. Here an event is one
    hop to a database thread; the change reaches sockets from the same loop. api.worker_event is the same
    endpoint for servers without Channels (tests, WSGI).
    """

    async def http_request(self, message):
        """A body over the limit is answered 413 at once; the rest of it is not kept."""
        received = sum(map(len, self.body)) + len(message.get("body", b""))
        if received > events.MAX_EVENT_BYTES:
            await self.answer(413, {"error": f"An event is at most {events.MAX_EVENT_BYTES} bytes."})
            raise StopConsumer()
        await super().http_request(message)

    async def handle(self, body):
        if self.scope["method"] != "POST":
            await self.answer(405, {"error": "Method not allowed."}, extra_headers=[(b"Allow", b"POST")])
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in self.scope["headers"]}
        job_id = self.scope["url_route"]["kwargs"]["job_id"]
        # On any free thread (not the one that pages' database work shares), with a request's connection handling.
        status, answer = await database_sync_to_async(events.take, thread_sensitive=False)(job_id, body, headers)
        await self.answer(status, answer)

    async def answer(self, status: int, answer: dict, extra_headers=()):
        headers = [(b"Content-Type", b"application/json"), *extra_headers]
        await self.send_response(status, json.dumps(answer).encode(), headers=headers)

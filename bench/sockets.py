"""Benchmark WebSocket clients: the tray's socket, minus the page."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime

from websockets.asyncio.client import connect


async def open_socket(server, cookie: str):
    """Connect as the tray does (session cookie, same-origin) and return the socket after its snapshot."""
    socket = await connect(
        server.websocket_url,
        additional_headers={"Cookie": cookie, "Origin": server.url},
        open_timeout=60,
        max_queue=None,
    )
    first = json.loads(await asyncio.wait_for(socket.recv(), 60))
    if first.get("type") != "snapshot":
        raise RuntimeError(f"Expected a snapshot, got {first}")
    return socket


async def listen(socket, on_job: Callable[[dict, float], None]) -> None:
    """Call on_job(job, received_at) for every job change until the socket closes or the task is cancelled."""
    async for frame in socket:
        received_at = time.time()
        message = json.loads(frame)
        if message.get("type") == "job":
            on_job(message["job"], received_at)


async def close_all(sockets, listeners) -> None:
    """Stop the listeners, then close their sockets."""
    for task in listeners:
        task.cancel()
    await asyncio.gather(*(socket.close() for socket in sockets))


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()

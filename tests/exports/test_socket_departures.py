"""
Clients that leave at once, as browsers do when a page is left mid-handshake: the real daphne, the real Redis
channel layer, raw TCP so the leaving can happen at every point a browser's can. None of it is an error.
"""

import asyncio
import os
import uuid

import pytest

from ..servers import AppServer, Browser

pytestmark = pytest.mark.redis

# A masked close frame (1001, going away), as a browser sends it when the page is left.
CLOSE_FRAME = bytes([0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xE9 ^ 2])


async def leave_early(port: int, cookie: str | None, *, how: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    headers = [
        "GET /ws/exports/ HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        f"Origin: http://127.0.0.1:{port}",
        *([f"Cookie: {cookie}"] if cookie else []),
    ]
    writer.write(("\r\n".join(headers) + "\r\n\r\n").encode())
    if how == "close frame before the answer":
        writer.write(CLOSE_FRAME)
    elif how == "after the answer":
        await reader.readuntil(b"\r\n\r\n")
    await writer.drain()
    writer.transport.abort()


def test_clients_that_leave_before_their_snapshot_log_no_error(tmp_path):
    server = AppServer(
        tmp_path, REDIS_URL=os.environ["REDIS_URL"], CHANNELS_PREFIX=f"departures-{uuid.uuid4().hex[:8]}"
    )
    server.prepare_demo()
    server.start()
    try:
        browser = Browser(server.url)
        browser.sign_in("demo", "demo")
        browser.start_demo_export()  # an active job: the socket would tick
        cookie = "; ".join(f"{cookie.name}={cookie.value}" for cookie in browser.cookies)

        async def everyone():
            ways = ["at once", "close frame before the answer", "after the answer"]
            await asyncio.gather(
                *(leave_early(server.port, who, how=how) for who in (cookie, None) for how in ways for _ in range(10))
            )

        asyncio.run(asyncio.wait_for(everyone(), 60))
        # daphne reaps finished application instances once a second and logs their exceptions then.
        assert browser.get_json("/api/exports/active/")["jobs"]
        asyncio.run(asyncio.sleep(2.5))
    finally:
        server.stop()
    log = (tmp_path / "daphne.log").read_text()
    assert " ERROR " not in log and "Traceback" not in log, log[-3000:]

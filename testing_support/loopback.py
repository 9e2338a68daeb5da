"""
Serving on loopback: a free port, waiting for a server to listen, a signed-in user's session cookie, and a relay
that counts what a server sends.
"""

import socket
import subprocess
import threading
import time
import urllib.parse


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_listening(process: subprocess.Popen, port: int, *, timeout: float, what: str) -> None:
    """Wait until `process` accepts connections on loopback `port`; fail at once if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not start listening on port {port} within {timeout:g} s")


def session_cookie(user) -> str:
    """A signed-in session for `user`, as the Cookie header a browser sends after the login form."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


class CountingRelay:
    """
    A TCP relay on loopback in front of a server (an S3 endpoint), counting the bytes the server sends back:
    what every client of the endpoint, ffmpeg included, moved from it.
    """

    def __init__(self, target_url: str):
        target = urllib.parse.urlsplit(target_url)
        self.target = (target.hostname, target.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"{target.scheme}://127.0.0.1:{self.listener.getsockname()[1]}"
        self.bytes_served = 0
        self.faults_made = 0
        self._fault: tuple[str, int] | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> "CountingRelay":
        self._accepting.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._closed.set()
        self.listener.close()

    def fail_after(self, how: str, more_bytes: int) -> None:
        """Once `more_bytes` more are served, "cut" the connection carrying them, or "stall" it: open, silent."""
        with self._lock:
            self._fault = (how, self.bytes_served + more_bytes)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, counted: bool) -> None:
        try:
            while data := source.recv(65536):
                if counted and (how := self._count(len(data))):
                    if how == "stall":
                        self._closed.wait()  # a store that stops answering, its connection left open
                    break  # a network that drops a connection mid-response
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            source.close()

    def _count(self, served: int) -> str | None:
        """Count bytes served; the fault to make now, if they reach it."""
        with self._lock:
            self.bytes_served += served
            if self._fault is None or self.bytes_served <= self._fault[1]:
                return None
            how, self._fault = self._fault[0], None
            self.faults_made += 1
            return how

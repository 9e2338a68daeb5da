"""
Run the app as `make run` does (migrate, seed, daphne) in a throwaway DATA_DIR, and talk to it over HTTP; a
throwaway PostgreSQL cluster for tests that stop or lock one.
"""

import glob
import http.cookiejar
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from testing_support.loopback import free_port, wait_until_listening

ROOT = Path(__file__).resolve().parent.parent
ASGI_APPLICATION = "exports_project.asgi:application"
STOP_GRACE_SECONDS = 20  # longer than daphne's application_close_timeout


class AppServer:
    """One daphne serving the app from `data_dir`; can be killed and started again on the same data."""

    def __init__(self, data_dir: Path, **environment: str):
        self.data_dir = data_dir
        self.port = free_port()
        self.environment = {
            **{key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}},
            "DATA_DIR": str(data_dir),
            "DEBUG": "true",
            **environment,
        }
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *arguments: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *arguments],
            cwd=ROOT,
            env=self.environment,
            check=True,
            timeout=300,
            capture_output=True,
        )

    def prepare_demo(self, *, clip_seconds: float = 1, width: int = 320, height: int = 180) -> None:
        self.manage("migrate", "--no-input")
        size = ["--width", str(width), "--height", str(height)]
        self.manage("seed_demo", "--clip-seconds", str(clip_seconds), *size)

    def start(self) -> None:
        """Start daphne alone, on data prepared already."""
        self._launch([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), ASGI_APPLICATION])

    def start_as_readme(self) -> None:
        """Start with the README's own command, `make run`: migrate and seed_demo run first, every time."""
        self._launch(["make", "--no-print-directory", "run", f"PORT={self.port}"], timeout=180)

    def _launch(self, command: list[str], *, timeout: float = 30) -> None:
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.environment,
            stdin=subprocess.DEVNULL,
            stdout=open(self.data_dir / "server.out", "ab"),
            stderr=open(self.data_dir / "daphne.log", "ab"),
            start_new_session=True,
        )
        wait_until_listening(self.process, self.port, timeout=timeout, what=" ".join(command[:3]))

    def kill(self, sig: int = signal.SIGKILL, *, timeout: float = 10) -> None:
        """Kill daphne's whole process group, as a crash or an OOM kill of the web server would."""
        os.killpg(self.process.pid, sig)
        self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """
        Ask daphne to end, and end it if it has not within STOP_GRACE_SECONDS: on SIGTERM it waits up to its
        application_close_timeout (10 s) for open sockets' consumers, so a 10 s wait failed a teardown now and then.
        """
        if self.process and self.process.poll() is None:
            try:
                self.kill(signal.SIGTERM, timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)


class Browser:
    """A cookie-keeping HTTP client that signs in through the login form and sends CSRF tokens."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def sign_in(self, username: str, password: str):
        page = self.opener.open(f"{self.base_url}/accounts/login/", timeout=10).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password})
        request = urllib.request.Request(
            f"{self.base_url}/accounts/login/", data=form.encode(), headers={"Referer": f"{self.base_url}/"}
        )
        return self.opener.open(request, timeout=10)

    def open(self, path: str, **headers):
        return self.opener.open(urllib.request.Request(self.base_url + path, headers=headers), timeout=10)

    def get_json(self, path: str):
        with self.open(path) as response:
            return json.loads(response.read())

    def post_json(self, path: str, body: dict):
        token = next(cookie.value for cookie in self.cookies if cookie.name == "csrftoken")
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-CSRFToken": token, "Referer": f"{self.base_url}/"},
        )
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def start_demo_export(self):
        """Start a multi-clip export of the whole demo project over the API; return (project, clips, job)."""
        project = self.get_json("/api/projects/")["projects"][0]
        clips = self.get_json(f"/api/projects/{project['id']}/")["project"]["clips"]
        params = {"clips": [{"clip_id": clip["id"], "start": 0, "end": clip["duration"]} for clip in clips]}
        status, body = self.post_json(
            f"/api/projects/{project['id']}/exports/", {"kind": "multi_clip", "params": params}
        )
        assert status == 201, body
        return project, clips, body["job"]


BINARIES = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


class ThrowawayPostgres:
    """A cluster made with the machine's PostgreSQL binaries (run as the postgres user, which they require)."""

    def __init__(self):
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="throwaway-postgres-")
        self.data = os.path.join(self.root, "data")
        shutil.chown(self.root, "postgres", "postgres")
        self.bin = BINARIES[-1]

    def run(self, *arguments):
        subprocess.run(["runuser", "-u", "postgres", "--", *arguments], check=True, capture_output=True, timeout=120)

    def create(self):
        self.run(f"{self.bin}/initdb", "-D", self.data, "--auth=trust", "--username=postgres")
        self.start()

    def start(self):
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self.run(f"{self.bin}/pg_ctl", "-D", self.data, "-o", options, "-w", "start", "-l", f"{self.root}/log")

    def stop(self):
        self.run(f"{self.bin}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def destroy(self):
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)

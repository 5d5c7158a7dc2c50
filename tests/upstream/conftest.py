"""Fixtures of the upstream tests: the demo upstream as a real process, and a scripted server for bad answers.

The demo process is started once per session (``--port 0``; the URL is read
from the line it prints) and reset to its generated data set before each test.
"""

from __future__ import annotations

import os
import re
import selectors
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.utils import timezone

from stayy.scheduling import JobContext

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEMO_USERS = 500
DEMO_LIVE_USERS = DEMO_USERS - DEMO_USERS // 50


def _read_line(process: subprocess.Popen[str], *, timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"demo_upstream printed nothing within {timeout:g} s")
    return process.stdout.readline()


# One client for the tests' own requests: building one costs tens of milliseconds (its SSL context).
HTTP = httpx.Client(timeout=10)


def _wait_until_answers(url: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if HTTP.get(f"{url}/v1/users/changes", params={"limit": 1}, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the demo upstream at {url} did not answer within {timeout:g} s")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def demo_upstream_process() -> Iterator[str]:
    """The URL of a ``manage.py demo_upstream`` process serving DEMO_USERS users."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "JOB_"))}
    env["JOB_ENABLE"] = "0"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "demo_upstream", "--port", "0", "--users", str(DEMO_USERS)],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_line(process, timeout=30)
        match = re.search(r"http://\S+", line)
        assert match, f"no URL in the line demo_upstream printed: {line!r}"
        url = match.group(0)
        _wait_until_answers(url, timeout=10)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def upstream_url(demo_upstream_process: str, settings: Any) -> str:
    """The demo upstream, reset to its generated data set, configured as THIRD_PARTY_USERS_URL."""
    resize(demo_upstream_process, DEMO_USERS)
    settings.THIRD_PARTY_USERS_URL = demo_upstream_process
    return demo_upstream_process


def resize(url: str, users: int) -> None:
    """Regenerate the demo's data set with another number of users (the next test resets it)."""
    HTTP.post(f"{url}/v1/_admin/reset", json={"users": users}).raise_for_status()


SYNC_JOB = "users.sync_third_party_users"


def sync_job_context() -> JobContext:
    """A context like the runner's for the sync job, outside any run row."""
    return JobContext(
        job_name=SYNC_JOB, run_id=None, scheduled_for=timezone.now(), trigger="test", timeout=600
    )


def cancel_after_first_page(ctx: JobContext, *, delay: float = 0.3) -> None:
    """Make ``ctx`` cancel itself (``shutdown``) ``delay`` seconds after the job reports its first page."""
    original = ctx.report_progress

    def cancel_soon_after_the_first_page(values=None, /, **counters):
        original(values, **counters)
        threading.Timer(delay, ctx.cancel, args=("shutdown",)).start()

    ctx.report_progress = cancel_soon_after_the_first_page  # type: ignore[method-assign]


@pytest.fixture
def touch(upstream_url: str) -> Callable[..., list[str]]:
    """Change users in the demo upstream (see its ``/v1/_admin/touch``); returns the touched ids."""

    def touch(**body: Any) -> list[str]:
        response = HTTP.post(f"{upstream_url}/v1/_admin/touch", json=body)
        assert response.status_code == 200, response.text
        touched: list[str] = response.json()["touched"]
        return touched

    return touch


# Short retry waits keep the fault tests fast; tests about the waits set their own.
FAST_RETRIES = {
    "THIRD_PARTY_USERS_MAX_RETRIES": 3,
    "THIRD_PARTY_USERS_BACKOFF": 0.01,
    "THIRD_PARTY_USERS_BACKOFF_MAX": 0.05,
}


@pytest.fixture(autouse=True)
def _fast_retries(settings: Any) -> None:
    for name, value in FAST_RETRIES.items():
        setattr(settings, name, value)


class FaultPlan:
    """The demo upstream's fault plan (see ``upstream_demo/faults.py``)."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/v1/_admin/faults"

    def __call__(self, *items: dict[str, Any], delay: float = 0.0) -> dict[str, Any]:
        """Set the plan: the faults in the order the next feed requests get them; returns its state."""
        response = HTTP.post(self.url, json={"next": list(items), "delay": delay})
        assert response.status_code == 200, response.text
        state: dict[str, Any] = response.json()
        return state

    def served(self) -> dict[str, int]:
        """How many feed requests got each fault ("page": a normal answer) since the plan was set."""
        served: dict[str, int] = HTTP.get(self.url).json()["served"]
        return served


@pytest.fixture
def faults(upstream_url: str) -> FaultPlan:
    return FaultPlan(upstream_url)


class ScriptedServer:
    """A raw HTTP server in a thread that answers each request with the next scripted action.

    An action is ``"drop"`` (close the connection without answering) or
    ``(status, content_type, body)``, optionally with a dict of extra headers
    as a fourth item. Every request line is recorded, and when it came
    (``times``: ``time.monotonic()``; ``clock_times``: ``time.time()``).
    """

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.requests: list[str] = []
        self.times: list[float] = []
        self.clock_times: list[float] = []  # the same moments on the wall clock (time.time())
        scripted = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                scripted.times.append(time.monotonic())
                scripted.clock_times.append(time.time())
                scripted.requests.append(data.split(b"\r\n", 1)[0].decode())
                action = scripted.script.pop(0) if scripted.script else (404, "text/plain", b"no script")
                if isinstance(action, str):  # "drop"
                    return
                status, content_type, body, *extra = action
                extra_headers = extra[0] if extra else {}
                headers = "".join(f"{name}: {value}\r\n" for name, value in extra_headers.items())
                self.request.sendall(
                    f"HTTP/1.1 {status} Scripted\r\nContent-Type: {content_type}\r\n{headers}"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll interval: shutdown() waits for the loop to notice it.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )


@pytest.fixture
def scripted_upstream(settings: Any) -> Iterator[ScriptedServer]:
    """A :class:`ScriptedServer`, configured as THIRD_PARTY_USERS_URL."""
    server = ScriptedServer()
    server.thread.start()
    settings.THIRD_PARTY_USERS_URL = server.url
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


@pytest.fixture
def closed_port_url(settings: Any) -> str:
    """A URL where nothing listens, configured as THIRD_PARTY_USERS_URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    settings.THIRD_PARTY_USERS_URL = url
    return url

"""Fixtures of the alerting tests: a real HTTP receiver on a free port, and alerting switched on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stayy.scheduling import alerts
from tests.jobs.conftest import (  # noqa: F401  (the job tests' fixtures, shared)
    _no_leftover_runs,
    _no_sessions_left_on_the_test_database,
    make_job,
    overrides,
    restore_registry,
    server_name,
    start_server,
)

SECRET = "test-webhook-secret"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """An HTTP server that records every request and answers with the next of ``statuses`` (then 200)."""

    url: str
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, request: Received) -> int:
        time.sleep(self.delay)
        with self.lock:
            self.requests.append(request)
            return self.statuses.pop(0) if self.statuses else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = box["r"].answer(Received(self.path, dict(self.headers), body, time.monotonic()))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box["r"] = Receiver(url=f"http://127.0.0.1:{server.server_port}/hooks/stayy")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box["r"]
    server.shutdown()
    server.server_close()


@pytest.fixture
def webhook(settings, receiver: Receiver) -> Receiver:
    """Alerts go to ``receiver`` only (no email), 12 per job and hour."""
    settings.ADMINS = []
    settings.STAYY = {
        **settings.STAYY,
        "ALERT_WEBHOOK_URL": receiver.url,
        "ALERT_WEBHOOK_SECRET": SECRET,
        "ALERT_MAX_PER_HOUR": 12,
        "ALERT_BASE_URL": "https://stayy.example.com",
    }
    return receiver


@pytest.fixture
def quick_retries(monkeypatch) -> None:
    monkeypatch.setattr(alerts, "RETRY_FIRST_DELAY", 0.3)
    monkeypatch.setattr(alerts, "RETRY_MAX_DELAY", 0.3)

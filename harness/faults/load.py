"""HTTP load for fault runs: threads that call the service's endpoints and record every answer.

Each request is recorded with its start and end (``time.monotonic()``), path
and status (``0`` when no HTTP answer came: refused, reset, timed out), so a
fault run can tell which failures overlapped the fault's window and which did
not.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    start: float
    end: float
    path: str
    status: int  # 0: no HTTP answer
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class HttpLoad:
    """``threads`` threads, each calling ``paths`` in turn on ``base_urls`` until :meth:`stop`."""

    base_urls: list[str]
    paths: list[str]
    token: str = ""
    threads: int = 4
    pause: float = 0.02
    timeout: float = 10.0
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> HttpLoad:
        for n in range(self.threads):
            thread = threading.Thread(target=self._loop, args=(n,), name=f"http-load-{n}", daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def stop(self) -> list[Answer]:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=self.timeout + 5)
        with self._lock:
            return sorted(self.answers, key=lambda a: a.start)

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def _loop(self, n: int) -> None:
        headers = {"Authorization": f"Token {self.token}"} if self.token else {}
        turn = n
        while not self._stop.is_set():
            base = self.base_urls[turn % len(self.base_urls)]
            path = self.paths[turn % len(self.paths)]
            turn += 1
            answer = self._call(base, path, headers)
            with self._lock:
                self.answers.append(answer)
            self._stop.wait(self.pause)

    def _call(self, base: str, path: str, headers: dict[str, str]) -> Answer:
        parts = urlsplit(base)
        start = time.monotonic()
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=self.timeout)
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            return Answer(start, time.monotonic(), path, response.status)
        except (OSError, http.client.HTTPException) as exc:
            return Answer(start, time.monotonic(), path, 0, f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()


def statuses(answers: Iterable[Answer]) -> dict[str, int]:
    """Answers counted by status (``"0"``: no HTTP answer), for reports."""
    return {str(k): v for k, v in sorted(Counter(a.status for a in answers).items())}


def failures_outside(answers: Iterable[Answer], windows: Iterable[tuple[float, float]]) -> list[Answer]:
    """Failed answers whose request did not overlap any of the ``(start, end)`` windows."""
    spans = list(windows)
    return [
        a for a in answers if not a.ok and not any(a.start <= end and a.end >= start for start, end in spans)
    ]


def rate(answers: list[Answer]) -> float:
    """Requests per second over the span of ``answers``."""
    if len(answers) < 2:
        return 0.0
    span = max(a.end for a in answers) - min(a.start for a in answers)
    return len(answers) / span if span > 0 else 0.0

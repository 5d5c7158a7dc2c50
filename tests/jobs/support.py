"""Helpers for the job framework tests: polling with a deadline, throwaway jobs, subprocesses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from django.db import connection

from stayy.scheduling.triggers import GRID_EPOCH

T = TypeVar("T")

PROJECT_DIR = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent


class Timeout(AssertionError):
    pass


def wait_until(condition: Callable[[], T], *, timeout: float, interval: float = 0.05, message: str = "") -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Timeout(message or f"condition not met within {timeout:g} s")
        time.sleep(interval)


def grid_tick(seconds: int, *, at: datetime | None = None) -> datetime:
    """The newest tick of an interval-``seconds`` grid at or before ``at`` (default: now)."""
    from django.utils import timezone

    at = at or timezone.now()
    steps = int((at - GRID_EPOCH).total_seconds() // seconds)
    return GRID_EPOCH + timedelta(seconds=steps * seconds)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_database_url() -> str:
    """A ``DATABASE_URL`` that points a subprocess at this test run's database."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{s['NAME']}"


def subprocess_env(**overrides: str | None) -> dict[str, str]:
    """The environment for a child process of the service: this run's settings, the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "JOB_", "RUN_MAIN"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="1",
        DATABASE_URL=child_database_url(),
        PYTHONUNBUFFERED="1",
        JOB_LEASE_TTL="5",
        JOB_SHUTDOWN_GRACE="3",
        LOG_LEVEL="INFO",
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_manage(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Process:
    """A long-running child process whose output goes to a file (read it on failure)."""

    def __init__(self, argv: list[str], *, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv, cwd=PROJECT_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Timeout(f"process {self.pid} still running after {timeout:g} s:\n{self.output()}") from None

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)
        self._log.close()


@contextmanager
def running(argv: list[str], *, env: dict[str, str], log_path: Path) -> Iterator[Process]:
    """Start a process; on the way out kill it if the test left it running (and show its output)."""
    process = Process(argv, env=env, log_path=log_path)
    try:
        yield process
    except BaseException:
        sys.stderr.write(f"--- output of {' '.join(argv)} ---\n{process.output()}\n")
        raise
    finally:
        process.kill()


def parent_pid(pid: int) -> int:
    """The parent of a live process (Linux ``/proc``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def run_rows(**filters: Any) -> list[Any]:
    from stayy.models import JobRun

    return list(JobRun.objects.filter(**filters).order_by("scheduled_for", "id"))


def every_second(job_name: str = "stayy.purge_job_runs") -> str:
    """``JOB_OVERRIDES`` for a child process: ``job_name`` every second, every other job disabled."""
    from stayy.scheduling import registry

    overrides: dict[str, Any] = {
        name: {"enabled": False}
        for name in registry.job_names()
        if name != job_name and not name.startswith("tests.")
    }
    overrides[job_name] = {"interval": 1}
    return json.dumps(overrides)

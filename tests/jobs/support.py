"""Helpers for the job framework tests: polling with a deadline, throwaway jobs, subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from harness.env import child_env
from harness.processes import Process
from stayy.scheduling.triggers import GRID_EPOCH
from tests.support import (  # re-exported for the tests of this folder
    BIN_DIR as BIN_DIR,
    PROJECT_DIR as PROJECT_DIR,
    Timeout as Timeout,
    child_database_url as child_database_url,
    free_port as free_port,
    wait_until as wait_until,
)


def grid_tick(seconds: int, *, at: datetime | None = None) -> datetime:
    """The newest tick of an interval-``seconds`` grid at or before ``at`` (default: now)."""
    from django.utils import timezone

    at = at or timezone.now()
    steps = int((at - GRID_EPOCH).total_seconds() // seconds)
    return GRID_EPOCH + timedelta(seconds=steps * seconds)


def subprocess_env(**overrides: str | None) -> dict[str, str]:
    """The environment for a child process of the service: this run's settings, the test database."""
    defaults: dict[str, str | None] = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": child_database_url(),
        "JOB_LEASE_TTL": "5",
        "JOB_SHUTDOWN_GRACE": "3",
        "LOG_LEVEL": "INFO",
    }
    return child_env(defaults, drop=("JOB_",), **overrides)


def run_manage(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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


def executing_row(
    job_name: str, *, heartbeat_age: float = 0.0, host: str = "other-host", pid: int = 4242
) -> Any:
    """A manual run of ``job_name`` executing in another process, its last heartbeat
    ``heartbeat_age`` seconds ago (a lost process's, once that is past the stale window)."""
    from django.utils import timezone

    from stayy.models import JobRun

    beat = timezone.now() - timedelta(seconds=heartbeat_age)
    return JobRun.objects.create(
        job_name=job_name,
        scheduled_for=beat,
        trigger=JobRun.Trigger.MANUAL,
        status=JobRun.Status.RUNNING,
        active=True,
        started_at=beat,
        heartbeat_at=beat,
        host=host,
        pid=pid,
    )

"""Harness of the cluster tests: real service processes, the evidence they leave, and the checks.

Child processes are gunicorn instances and ``runjobs`` processes started with
``tests.cluster.settings`` (the service plus the test-only ``testing.slow``
job) against this test run's database. Each runs in a session of its own, so
the harness can kill it together with its workers by its process group id.

Evidence of execution comes from three independent places: the run table,
the JSON log lines of every process ("run started" per execution) and the
slow job's own execution log (``STAYY_TEST_EXEC_LOG``).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection
from django.utils import timezone

from harness import processes as harness_processes
from harness.env import child_env
from harness.processes import HttpAnswer as HttpAnswer, Process, children as children, pid_alive as pid_alive
from stayy.models import Job, JobRun, LeaderLease
from stayy.scheduling.triggers import GRID_EPOCH
from tests.support import (  # re-exported for the tests of this folder
    BIN_DIR as BIN_DIR,
    PROJECT_DIR as PROJECT_DIR,
    Timeout as Timeout,
    child_database_url as child_database_url,
    free_port as free_port,
    wait_until as wait_until,
)

SETTINGS_MODULE = "tests.cluster.settings"

#: Lease TTL and stale-run bound of every child process; every time bound below derives from them.
TTL = 3.0
STALE_AFTER = 4.0
#: Heartbeats every max(1, STALE_AFTER / 5) s and reaps every max(1, STALE_AFTER / 3) s: slack for both.
REAP_SLACK = 1.0 + STALE_AFTER / 3
#: Scheduling slack on this 2-core machine (thread start, queries, CPU shared by many workers).
MARGIN = 3.0

PURGE = "stayy.purge_job_runs"
SLOW = "testing.slow"
EXECUTED = ("succeeded", "failed", "timed_out", "running")
MAIN_REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def database_url() -> str:
    """A ``DATABASE_URL`` pointing a child process at this test run's PostgreSQL database."""
    assert connection.vendor == "postgresql", "the cluster tests run on PostgreSQL (DATABASE_URL)"
    return child_database_url()


def tick_of(at: datetime, seconds: int = 1) -> datetime:
    """The newest tick of an interval-``seconds`` grid at or before ``at``."""
    steps = int((at - GRID_EPOCH).total_seconds() // seconds)
    return GRID_EPOCH + timedelta(seconds=steps * seconds)


# --- processes ------------------------------------------------------------------


class ServiceLog:
    """The JSON log lines of a service process (``LOG_FORMAT=json``)."""

    def records(self: Any) -> list[dict[str, Any]]:
        """The JSON log lines; gunicorn's own lines are skipped."""
        out = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by SIGKILL
                    continue
        return out


class ServiceProcess(ServiceLog, Process):
    """A child process in a session of its own, its output (stdout and stderr) added to a file."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log_path: Path) -> None:
        super().__init__(argv, env=env, log_path=log_path, name=name, new_session=True, append=True)

    def job_server_pids(self) -> set[int]:
        return {self.pid}


class Gunicorn(ServiceLog, harness_processes.Gunicorn):
    """``gunicorn -c gunicorn.conf.py`` on a free port of ``host``, in a session of its own."""

    def __init__(
        self,
        name: str,
        *,
        env: dict[str, str],
        log_path: Path,
        host: str = "127.0.0.1",
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        super().__init__(env=env, log_path=log_path, name=name, host=host, wrap=wrap, append=True)

    def job_server_pids(self) -> set[int]:
        return self.workers()

    def request(  # type: ignore[override]
        self, method: str, path: str, *, token: str | None = None, timeout: float = 10, json_body: Any = None
    ) -> HttpAnswer:
        headers = {"Authorization": f"Token {token}"} if token else {}
        return super().request(method, path, headers=headers, timeout=timeout, json_body=json_body)


@dataclass
class Cluster:
    """The processes of one test, all of one ``JOB_NAME``; :meth:`kill_all` runs in the finalizer."""

    tmp_path: Path
    job_name: str
    exec_log: Path
    #: Where the children store their data; empty: this test run's PostgreSQL database.
    database_url: str = ""
    processes: list[ServiceProcess | Gunicorn] = field(default_factory=list)

    def env(self, *, redis_url: str, overrides: dict[str, Any] | None = None, **extra: str) -> dict[str, str]:
        """A child's environment: this test's database, lease name and short TTLs; ``extra`` wins."""
        job_overrides: dict[str, Any] = {PURGE: {"interval": 1}, SLOW: {"enabled": False}}
        job_overrides.update(overrides or {})
        values: dict[str, str | None] = {
            "THIRD_PARTY_USERS_URL": None,  # the users sync job skips instead of calling out
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "DJANGO_DEBUG": "1",
            "DATABASE_URL": self.database_url or database_url(),
            "REDIS_URL": redis_url,
            "JOB_ENABLE": "1",
            "JOB_NAME": self.job_name,
            "JOB_OVERRIDES": json.dumps(job_overrides),
            "JOB_LEASE_TTL": f"{TTL:g}",
            "JOB_RUN_STALE_AFTER": f"{STALE_AFTER:g}",
            "JOB_SHUTDOWN_GRACE": "10",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "GUNICORN_ACCESS_LOG": "",
            "STAYY_TEST_EXEC_LOG": str(self.exec_log),
        }
        values.update(extra)
        return child_env(values, drop=("JOB_", "PROMETHEUS_", "LOG_", "METRICS_", "GUNICORN_", "STAYY_"))

    def gunicorn(
        self,
        name: str,
        *,
        env: dict[str, str],
        workers: int,
        host: str = "127.0.0.1",
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> Gunicorn:
        metrics_dir = self.tmp_path / f"metrics-{name}"
        metrics_dir.mkdir(exist_ok=True)
        env = {**env, "GUNICORN_WORKERS": str(workers), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        process = Gunicorn(name, env=env, log_path=self.tmp_path / f"{name}.log", host=host, wrap=wrap)
        self.processes.append(process)
        return process

    def runjobs(self, name: str, *, env: dict[str, str]) -> ServiceProcess:
        argv = [sys.executable, "manage.py", "runjobs"]
        process = ServiceProcess(name, argv, env=env, log_path=self.tmp_path / f"{name}.log")
        self.processes.append(process)
        return process

    def kill_all(self) -> None:
        for process in self.processes:
            process.kill()

    def records(self) -> list[dict[str, Any]]:
        return [record for process in self.processes for record in process.records()]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ({p.pid}) ---\n{p.output()[-20000:]}" for p in self.processes)

    def owner(self, pid: int) -> ServiceProcess | Gunicorn | None:
        """The started process that is, or whose worker is, ``pid``."""
        for process in self.processes:
            if pid == process.pid or pid in process.job_server_pids():
                return process
        return None

    def exec_entries(self) -> list[dict[str, Any]]:
        if not self.exec_log.exists():
            return []
        return [json.loads(line) for line in self.exec_log.read_text().splitlines() if line]


# --- reading the database ---------------------------------------------------------------


def leader_row(job_name: str, *, using: str = DEFAULT_DB_ALIAS) -> LeaderLease | None:
    return LeaderLease.objects.using(using).filter(name=job_name).exclude(holder="").first()


def live_leader_pid(
    job_name: str, *, other_than: Iterable[int] = (), using: str = DEFAULT_DB_ALIAS
) -> int | None:
    """The pid the lease row names, if that process is alive and not one of ``other_than``."""
    row = leader_row(job_name, using=using)
    if row is None or row.pid is None or row.pid in set(other_than) or not pid_alive(row.pid):
        return None
    if row.expires_at is not None and row.expires_at < timezone.now():
        return None
    return row.pid


def schedule_since(job: str, *, using: str = DEFAULT_DB_ALIAS, timeout: float = 10) -> datetime:
    """When the first leader scheduled ``job``; waits for it, as the lease can be taken before that."""
    return wait_until(
        lambda: Job.objects.using(using).filter(name=job).values_list("schedule_since", flat=True).first(),
        timeout=timeout,
        message=f"{job} was never scheduled",
    )


def scheduled_rows(
    job: str, *, start: datetime, end: datetime, using: str = DEFAULT_DB_ALIAS
) -> list[JobRun]:
    return list(
        JobRun.objects.using(using)
        .filter(job_name=job, trigger="schedule", scheduled_for__gte=start, scheduled_for__lte=end)
        .order_by("scheduled_for", "id")
    )


# --- the checks -------------------------------------------------------------------------------


def tick_accounting(
    job: str, *, start: datetime, end: datetime, every: int = 1, using: str = DEFAULT_DB_ALIAS
) -> tuple[list[datetime], list[datetime]]:
    """Ticks of the interval-``every`` grid in ``[start, end]`` without a row, and with more than one."""
    rows = scheduled_rows(job, start=start, end=end, using=using)
    per_tick = Counter(row.scheduled_for for row in rows)
    ticks = []
    tick = tick_of(start, every)
    if tick < start:
        tick += timedelta(seconds=every)
    while tick <= end:
        ticks.append(tick)
        tick += timedelta(seconds=every)
    gaps = [t for t in ticks if per_tick[t] == 0]
    duplicates = [t for t, n in per_tick.items() if n > 1]
    return gaps, duplicates


def logged_starts(records: list[dict[str, Any]], job: str) -> Counter[tuple[str, str]]:
    """Executions the processes logged ("run started"), counted per (trigger, scheduled time)."""
    starts: Counter[tuple[str, str]] = Counter()
    for record in records:
        message = record.get("message", "")
        if record.get("job") == job and message.startswith("run started ("):
            trigger, _, rest = message[len("run started (") :].partition(", scheduled for ")
            starts[(trigger, rest.rstrip(")"))] += 1
    return starts


def assert_executed_once_per_tick(
    cluster: Cluster, job: str, *, start: datetime, end: datetime, using: str = DEFAULT_DB_ALIAS
) -> int:
    """Each scheduled tick in the window executed at most once, by the logs (and the exec log for
    the slow job), and exactly the ticks whose rows say they executed; returns how many executed."""
    rows = [r for r in scheduled_rows(job, start=start, end=end, using=using) if r.status in EXECUTED]
    row_ticks = Counter(r.scheduled_for.isoformat() for r in rows)
    started = {
        when: n
        for (trigger, when), n in logged_starts(cluster.records(), job).items()
        if trigger == "schedule" and start <= datetime.fromisoformat(when) <= end
    }
    twice = {when: n for when, n in started.items() if n > 1}
    assert not twice, f"{job}: ticks executed more than once (log lines 'run started'): {twice}"
    assert set(started) == set(row_ticks), (
        f"{job}: executions logged {sorted(set(started) ^ set(row_ticks))} disagree with the run rows"
    )
    if job == SLOW:
        execs = Counter(
            e["scheduled_for"]
            for e in cluster.exec_entries()
            if e["event"] == "start"
            and e["trigger"] == "schedule"
            and start <= datetime.fromisoformat(e["scheduled_for"]) <= end
        )
        twice = {when: n for when, n in execs.items() if n > 1}
        assert not twice, f"{job}: handler executed more than once for ticks {twice}"
        assert set(execs) == set(row_ticks), (
            f"{job}: handler executions {sorted(set(execs) ^ set(row_ticks))} disagree with the run rows"
        )
    return len(rows)


def exec_intervals(
    cluster: Cluster, *, trigger: str | None = "schedule", killed_at: dict[int, float] | None = None
) -> list[tuple[float, float, int, int]]:
    """(start, end, pid, run id) of each execution of the slow job (of one trigger, or of any with
    ``None``), oldest first.

    A run that never logged its end ends when its process was killed (``killed_at`` by pid), else
    never (``inf``: still running, and nothing may start after it).
    """
    killed_at = killed_at or {}
    starts: dict[int, dict[str, Any]] = {}
    ends: dict[int, float] = {}
    for entry in cluster.exec_entries():
        if trigger is not None and entry["trigger"] != trigger:
            continue
        if entry["event"] == "start":
            starts[entry["run_id"]] = entry
        elif entry["event"] == "end":
            ends[entry["run_id"]] = entry["t"]
    return sorted(
        (e["t"], ends.get(run_id, killed_at.get(e["pid"], float("inf"))), e["pid"], run_id)
        for run_id, e in starts.items()
    )


def assert_no_concurrent_executions(intervals: list[tuple[float, float, int, int]]) -> None:
    for (_s1, e1, p1, r1), (s2, _e2, p2, r2) in itertools.pairwise(intervals):
        assert s2 >= e1, f"run {r2} (pid {p2}) started {e1 - s2:.2f} s before run {r1} (pid {p1}) returned"

#!/usr/bin/env python
"""Check one-run-per-tick on a real cluster of gunicorn instances, with your own settings.

Starts ``--instances`` gunicorn instances of ``--workers`` workers each, all
with ``JOB_ENABLE=1`` and ``stayy.purge_job_runs`` overridden to run every
second, against the database and Redis of your environment (``DATABASE_URL``,
``REDIS_URL``, ...). It watches the run table for ``--seconds``, optionally
``kill -9``\\ s the leading worker half-way (``--kill-leader``), stops the
instances and prints: the processes, who led, ticks expected vs executed,
duplicates, gaps and the failover time.

Executions are counted twice, independently: from the run rows and from the
"run started" log line each execution writes. Exit status: 0 all ticks ran
once, 1 a tick executed twice or left no row, 2 the check could not run.

Use a scratch database: the check runs the purge job every second there and
rewrites its catalog entry. See ``scripts/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from harness.env import child_env  # noqa: E402 - found through the line above
from harness.processes import Gunicorn, pid_alive  # noqa: E402

JOB = "stayy.purge_job_runs"
EXECUTED = ("succeeded", "failed", "timed_out", "running")
GRID_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # interval grids start here (stayy.scheduling.triggers)


# --- analysis (pure, so it can be tested on made-up data) -------------------------------------


@dataclass
class TickReport:
    expected: int
    statuses: Counter[str]
    gaps: list[datetime]
    duplicate_rows: list[datetime]
    duplicate_executions: list[str]
    executions_without_row: list[str]

    @property
    def executed(self) -> int:
        return sum(self.statuses[s] for s in EXECUTED)

    @property
    def ok(self) -> bool:
        return not (
            self.gaps or self.duplicate_rows or self.duplicate_executions or self.executions_without_row
        )


def grid_ticks(start: datetime, end: datetime) -> list[datetime]:
    """The interval-1 ticks in ``[start, end]``."""
    first = GRID_EPOCH + timedelta(seconds=int((start - GRID_EPOCH).total_seconds()))
    if first < start:
        first += timedelta(seconds=1)
    ticks = []
    while first <= end:
        ticks.append(first)
        first += timedelta(seconds=1)
    return ticks


def analyse(
    rows: Iterable[tuple[datetime, str]], started: Iterable[str], *, start: datetime, end: datetime
) -> TickReport:
    """Compare the ticks of ``[start, end]`` with the run rows (scheduled time, status) and the
    executions logged (scheduled times, ISO format, one per "run started" line)."""
    ticks = grid_ticks(start, end)
    per_tick: Counter[datetime] = Counter()
    statuses: Counter[str] = Counter()
    executed_ticks = set()
    for scheduled_for, status in rows:
        if start <= scheduled_for <= end:
            per_tick[scheduled_for] += 1
            statuses[status] += 1
            if status in EXECUTED:
                executed_ticks.add(scheduled_for.isoformat())
    logged = Counter(s for s in started if start <= datetime.fromisoformat(s) <= end)
    return TickReport(
        expected=len(ticks),
        statuses=statuses,
        gaps=[t for t in ticks if not per_tick[t]],
        duplicate_rows=sorted(t for t, n in per_tick.items() if n > 1),
        duplicate_executions=sorted(s for s, n in logged.items() if n > 1),
        executions_without_row=sorted(set(logged) - executed_ticks),
    )


def logged_starts(lines: Iterable[str], job: str = JOB) -> list[tuple[int, str]]:
    """(pid, scheduled time) of every scheduled execution of ``job`` in JSON log lines."""
    out = []
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        message = record.get("message", "")
        prefix = "run started (schedule, scheduled for "
        if record.get("job") == job and message.startswith(prefix):
            out.append((record["pid"], message[len(prefix) :].rstrip(")")))
    return out


def leadership_events(lines: Iterable[str]) -> list[tuple[str, int, str]]:
    """(time, pid, message) of every "became leader" / "leadership ... ended" log line."""
    out = []
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        message = record.get("message", "")
        if message.startswith(("became leader", "leadership of")):
            out.append((record["ts"], record["pid"], message))
    return sorted(out)


# --- processes -------------------------------------------------------------------------------


class Instance(Gunicorn):
    """One gunicorn instance; remembers every worker it was seen with."""

    def __init__(self, name: str, *, env: dict[str, str], log_path: Path) -> None:
        super().__init__(env=env, log_path=log_path, name=name)
        self.worker_history: set[int] = set()

    def workers(self) -> set[int]:
        pids = super().workers()
        self.worker_history |= pids
        return pids

    def lines(self) -> list[str]:
        return self.output().splitlines()


def instance_env(*, job_name: str, workers: int, metrics_dir: Path) -> dict[str, str]:
    """Your environment, with jobs on, the purge job every second, and JSON logs."""
    base = child_env()
    overrides = json.loads(base.get("JOB_OVERRIDES") or "{}")
    overrides[JOB] = {**overrides.get(JOB, {}), "interval": 1, "enabled": True}
    overrides[JOB].pop("cron", None)
    overrides[JOB].pop("timezone", None)
    return {
        **base,
        "JOB_ENABLE": "1",
        "JOB_NAME": job_name,
        "JOB_OVERRIDES": json.dumps(overrides),
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_ACCESS_LOG": "",
        "LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }


# --- the check -------------------------------------------------------------------------------


def _django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise SystemExit("cluster_check: the database has unapplied migrations; run manage.py migrate first")


def _leader(job_name: str) -> int | None:
    from stayy.models import LeaderLease

    row = LeaderLease.objects.filter(name=job_name).exclude(holder="").first()
    if row is None or row.pid is None or not pid_alive(row.pid):
        return None
    return int(row.pid)


def _wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"cluster_check: {what} within {timeout:g} s")


def run_check(args: argparse.Namespace) -> int:
    _django_setup()
    from django.utils import timezone

    from stayy.conf import stayy_settings
    from stayy.models import Job, JobRun

    ttl = stayy_settings.lease_ttl
    recent = JobRun.objects.filter(job_name=JOB, created_at__gte=timezone.now() - timedelta(seconds=30))
    if recent.exists() and not args.allow_busy:
        print(
            f"cluster_check: {JOB} ran in the last 30 s on this database: another scheduler is using it. "
            "Use a scratch database (or --allow-busy to count its runs too).",
            file=sys.stderr,
        )
        return 2
    job_name = f"cluster-check-{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="stayy-cluster-check-"))
    instances: list[Instance] = []
    try:
        for n in range(args.instances):
            metrics_dir = workdir / f"metrics-{n}"
            metrics_dir.mkdir()
            env = instance_env(job_name=job_name, workers=args.workers, metrics_dir=metrics_dir)
            instances.append(Instance(f"instance-{n}", env=env, log_path=workdir / f"instance-{n}.log"))
        for instance in instances:
            _wait(
                lambda i=instance: i.running() and len(i.workers()) >= args.workers and i.healthy(),
                60,
                f"{instance.name} was not serving (log: {instance.log_path})",
            )
        first_leader = _wait(lambda: _leader(job_name), ttl + 5, "no process took the lease")
        since: datetime = _wait(
            lambda: Job.objects.filter(name=JOB).values_list("schedule_since", flat=True).first(),
            ttl + 5,
            "the leader did not schedule the job",
        )
        start = max(since, timezone.now()) + timedelta(seconds=1)
        print(f"cluster_check: {args.instances} instance(s) x {args.workers} worker(s), JOB_NAME={job_name}")
        print(f"  logs in {workdir}")

        failover: dict[str, float] = {}
        killed: int | None = None
        deadline = time.monotonic() + args.seconds
        if args.kill_leader:
            time.sleep(args.seconds / 2)
            killed = _leader(job_name)
            if killed is not None:
                os.kill(killed, signal.SIGKILL)
                killed_at = time.monotonic()
                print(f"  kill -9 of the leader {killed} at {timezone.now():%H:%M:%S}")
                new_leader = _wait(
                    lambda: (p := _leader(job_name)) not in (None, killed) and p,
                    max(ttl * 3, 30),
                    "nobody took over from the killed leader",
                )
                failover["new leader"] = time.monotonic() - killed_at
                kill_wall = timezone.now() - timedelta(seconds=failover["new leader"])
                _wait(
                    lambda: JobRun.objects.filter(
                        job_name=JOB, pid=new_leader, started_at__gte=kill_wall
                    ).exists(),
                    max(ttl * 3, 30),
                    "the new leader ran nothing",
                )
                failover["first run of the new leader"] = time.monotonic() - killed_at
        for instance in instances:
            instance.workers()
        time.sleep(max(0.0, deadline - time.monotonic()))
        end = timezone.now() - timedelta(seconds=2)
        for instance in instances:
            instance.workers()
        time.sleep(2)  # ticks up to ``end`` finish before the instances stop
    finally:
        # All at once: stopped one by one, the last instance would lead for a moment.
        for instance in instances:
            if instance.running():
                instance.signal(signal.SIGTERM)
        for instance in instances:
            instance.stop(timeout=60)

    rows = list(
        JobRun.objects.filter(
            job_name=JOB, trigger="schedule", scheduled_for__gte=start, scheduled_for__lte=end
        ).values_list("scheduled_for", "status")
    )
    lines = [line for instance in instances for line in instance.lines()]
    starts = logged_starts(lines)
    report = analyse(rows, [s for _, s in starts], start=start, end=end)
    executors = Counter(pid for pid, s in starts if start <= datetime.fromisoformat(s) <= end)

    print("\nprocesses:")
    for instance in instances:
        workers = ", ".join(str(p) for p in sorted(instance.worker_history))
        print(f"  {instance.name}: master {instance.pid}, port {instance.port}, workers {workers}")
    print("leaders:")
    print(f"  first: {first_leader}" + (f", killed: {killed}" if killed else ""))
    for ts, pid, message in leadership_events(lines):
        print(f"  {ts} {pid}: {message}")
    print(f"window: {start:%H:%M:%S} - {end:%H:%M:%S} UTC")
    print(f"ticks expected: {report.expected}")
    print(f"ticks executed: {report.executed} (by pid: {dict(executors)})")
    print(f"rows by status: {dict(report.statuses)}")
    print(f"duplicates: {len(report.duplicate_rows) + len(report.duplicate_executions)}", end="")
    print(f" (rows {report.duplicate_rows}, logged executions {report.duplicate_executions})")
    print(f"gaps: {len(report.gaps)} {[t.isoformat() for t in report.gaps]}")
    if report.executions_without_row:
        print(f"executions logged without an executed row: {report.executions_without_row}")
    if failover:
        print("failover: " + ", ".join(f"{k} after {v:.2f} s" for k, v in failover.items()))
    print("result: " + ("OK" if report.ok else "FAILED"))
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers per instance (3)")
    parser.add_argument("--instances", type=int, default=2, help="gunicorn instances (2)")
    parser.add_argument("--seconds", type=float, default=30, help="how long to watch (30)")
    parser.add_argument("--kill-leader", action="store_true", help="kill -9 the leading worker half-way")
    parser.add_argument(
        "--allow-busy", action="store_true", help="run even if another scheduler runs the purge job here"
    )
    args = parser.parse_args(argv)
    # SIGTERM (like Ctrl-C) still stops the instances this script started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.workers < 1 or args.instances < 1 or args.seconds < 5:
        parser.error("--workers and --instances must be at least 1, --seconds at least 5")
    return run_check(args)


if __name__ == "__main__":
    sys.exit(main())

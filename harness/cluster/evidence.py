"""The evidence a cluster leaves, and the checks on it: one execution per tick, a row for every tick.

Evidence of execution comes from three independent places: the run table,
the JSON log lines of every process ("run started" per execution) and the
slow job's own execution log (``STAYY_TEST_EXEC_LOG``). The database is read
through a Django alias (``using``), the default one unless given. A check
that does not hold raises :class:`AssertionError` naming what it found.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from harness.cluster import SLOW
from harness.cluster.processes import Cluster
from harness.processes import pid_alive
from harness.waiting import wait_until
from stayy.models import Job, JobRun, LeaderLease
from stayy.scheduling.triggers import GRID_EPOCH

EXECUTED = ("succeeded", "failed", "timed_out", "running")


def tick_of(at: datetime, seconds: int = 1) -> datetime:
    """The newest tick of an interval-``seconds`` grid at or before ``at``."""
    steps = int((at - GRID_EPOCH).total_seconds() // seconds)
    return GRID_EPOCH + timedelta(seconds=steps * seconds)


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
    since = wait_until(
        lambda: Job.objects.using(using).filter(name=job).values_list("schedule_since", flat=True).first(),
        timeout=timeout,
        message=f"{job} was never scheduled",
    )
    return cast(datetime, since)  # wait_until returns only a truthy value


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
    _check_executions(job, started, row_ticks, what="executions logged ('run started')")
    if job == SLOW:
        execs = Counter(
            e["scheduled_for"]
            for e in cluster.exec_entries()
            if e["event"] == "start"
            and e["trigger"] == "schedule"
            and start <= datetime.fromisoformat(e["scheduled_for"]) <= end
        )
        _check_executions(job, execs, row_ticks, what="handler executions")
    return len(rows)


def _check_executions(
    job: str, counted: Mapping[str, int], row_ticks: Mapping[str, int], *, what: str
) -> None:
    """Each tick counted at most once, and exactly the ticks whose rows say they executed."""
    twice = {when: n for when, n in counted.items() if n > 1}
    if twice:
        raise AssertionError(f"{job}: {what} more than once for ticks {twice}")
    if set(counted) != set(row_ticks):
        differing = sorted(set(counted) ^ set(row_ticks))
        raise AssertionError(f"{job}: {what} {differing} disagree with the run rows")


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
    """No execution of :func:`exec_intervals` started before the one before it returned."""
    for (_s1, e1, p1, r1), (s2, _e2, p2, r2) in itertools.pairwise(intervals):
        if s2 < e1:
            raise AssertionError(
                f"run {r2} (pid {p2}) started {e1 - s2:.2f} s before run {r1} (pid {p1}) returned"
            )

"""No overlap across processes: a run still executing anywhere makes every leader skip the tick.

Two ``runjobs`` processes (the same job server as a gunicorn worker's) share
the lease. The leader is stopped (SIGTERM) while it executes the slow job,
whose handler ignores cancellation and so keeps executing during the
shutdown grace: the process that takes over must skip, with the reason,
every tick until that run returns — both for a run that is still within its
timeout and for one that timed out and has not returned.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from harness.cluster import MARGIN, PURGE, SLOW, TTL
from harness.cluster.evidence import (
    assert_executed_once_per_tick,
    assert_no_concurrent_executions,
    exec_intervals,
    live_leader_pid,
    schedule_since,
    tick_accounting,
)
from harness.cluster.processes import Cluster, ServiceProcess
from stayy.models import JobRun
from tests.cluster.support import MAIN_REDIS_URL
from tests.support import wait_until


def _start_pair(
    cluster: Cluster, *, seconds: float, timeout: float = 30
) -> tuple[ServiceProcess, ServiceProcess, ServiceProcess]:
    """Two ``runjobs`` processes running a slow job that ignores cancellation; and the leader."""
    child_env = cluster.env(
        redis_url=MAIN_REDIS_URL,
        overrides={PURGE: {"enabled": False}, SLOW: {"enabled": True, "timeout": timeout}},
        STAYY_TEST_SLOW_SECONDS=f"{seconds:g}",
        STAYY_TEST_SLOW_IGNORE_CANCEL="1",
    )
    p = cluster.runjobs("p", env=child_env)
    q = cluster.runjobs("q", env=child_env)
    leader = wait_until(
        lambda: live_leader_pid(cluster.job_name), timeout=15 + TTL, message="no runjobs process leads"
    )
    first = cluster.owner(leader)
    assert first in (p, q)
    return p, q, first


def _fresh_run(cluster: Cluster, pid: int, *, newer_than: int = 0) -> JobRun:
    """Wait for a run of the slow job that ``pid`` started within the last half second."""
    return wait_until(
        lambda: JobRun.objects.filter(
            job_name=SLOW,
            status="running",
            pid=pid,
            pk__gt=newer_than,
            started_at__gte=timezone.now() - timedelta(seconds=0.5),
        ).first(),
        timeout=8,
        interval=0.05,
        message=f"{pid} started no run of the slow job",
    )


def _next_run(cluster: Cluster, pid: int, *, after: JobRun) -> JobRun:
    return wait_until(
        lambda: (
            JobRun.objects.filter(job_name=SLOW, pid=pid, pk__gt=after.pk, started_at__isnull=False)
            .exclude(status="skipped")
            .first()
        ),
        timeout=8,
        message=f"{pid} started no run after run {after.pk}",
    )


def _skips_naming(run: JobRun, *, by: int, reason: str) -> list[JobRun]:
    return list(
        JobRun.objects.filter(
            job_name=SLOW, status="skipped", pid=by, error=f"{reason} (run {run.pk} on {run.host}:{run.pid})"
        )
    )


def _assert_accounted(cluster: Cluster, *, start: datetime, end: datetime) -> None:
    gaps, duplicates = tick_accounting(SLOW, start=start, end=end)
    assert not duplicates, f"ticks with two rows: {duplicates}"
    assert not gaps, f"ticks without a row: {[t.isoformat() for t in gaps]}"
    assert_executed_once_per_tick(cluster, SLOW, start=start, end=end)
    assert_no_concurrent_executions(exec_intervals(cluster))


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_no_overlap_across_processes(cluster: Cluster) -> None:
    p, q, old = _start_pair(cluster, seconds=3)
    new = q if old is p else p
    start = schedule_since(SLOW) + timedelta(seconds=1)

    # Within the leader: the ticks during a 3 s run are skipped, naming the run.
    first = _fresh_run(cluster, old.pid)
    wait_until(
        lambda: JobRun.objects.filter(pk=first.pk, status="succeeded").exists(),
        timeout=3 + MARGIN,
        message=f"run {first.pk} did not finish",
    )
    assert len(_skips_naming(first, by=old.pid, reason="previous run still running")) >= 2

    # Across processes: the leader stops during a run that does not honour cancellation; the
    # process that takes over skips the ticks until that run returns in the old process.
    run = _fresh_run(cluster, old.pid, newer_than=first.pk)
    old.signal(signal.SIGTERM)
    term_at = time.monotonic()
    wait_until(
        lambda: live_leader_pid(cluster.job_name, other_than={old.pid}) == new.pid,
        timeout=TTL + MARGIN,
        message="the other process did not take over",
    )
    takeover = time.monotonic() - term_at
    print(f"\n[overlap] SIGTERM of the leader during a run: the other process leads after {takeover:.2f} s")
    wait_until(
        lambda: JobRun.objects.filter(pk=run.pk, status="succeeded", active=False).exists(),
        timeout=3 + MARGIN,
        message=f"run {run.pk} was not finished within the shutdown grace",
    )
    assert old.wait(timeout=10) == 0
    skipped = _skips_naming(run, by=new.pid, reason="previous run still running")
    assert skipped, f"the new leader {new.pid} skipped no tick while run {run.pk} still executed elsewhere"
    assert takeover < 2, f"the stopped leader held the lease {takeover:.2f} s while its run finished"
    run.refresh_from_db()
    after = _next_run(cluster, new.pid, after=run)
    assert after.started_at >= run.finished_at
    _assert_accounted(cluster, start=start, end=timezone.now() - timedelta(seconds=1.5))


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_timeout_across_processes(cluster: Cluster) -> None:
    p, q, old = _start_pair(cluster, seconds=4, timeout=1)
    new = q if old is p else p
    start = schedule_since(SLOW) + timedelta(seconds=1)

    run = _fresh_run(cluster, old.pid)
    wait_until(
        lambda: JobRun.objects.filter(pk=run.pk, status="timed_out").exists(),
        timeout=1 + MARGIN,
        message=f"run {run.pk} did not time out",
    )
    run.refresh_from_db()
    assert run.error == "timed out after 1 s; cancellation requested"
    assert 1000 <= run.duration_ms <= 1000 + 1000, f"timed out after {run.duration_ms} ms"
    assert run.active, "the handler still executes: the run must stay active"
    reason = "previous run timed out and has not returned"
    wait_until(
        lambda: _skips_naming(run, by=old.pid, reason=reason),
        timeout=2,
        message="no tick skipped after the timeout",
    )

    # The leader stops while its timed-out handler still executes: the other process skips too.
    old.signal(signal.SIGTERM)
    wait_until(
        lambda: _skips_naming(run, by=new.pid, reason=reason),
        timeout=3,
        message=f"the new leader {new.pid} did not skip while run {run.pk} had not returned",
    )
    wait_until(
        lambda: JobRun.objects.filter(pk=run.pk, active=False).exists(),
        timeout=4 + MARGIN,
        message=f"run {run.pk} never returned",
    )
    assert old.wait(timeout=10) == 0
    run.refresh_from_db()
    assert run.status == "timed_out", "the late return must not overwrite the timeout"
    returned = [e for e in cluster.exec_entries() if e["run_id"] == run.pk and e["event"] == "end"]
    assert len(returned) == 1
    after = _next_run(cluster, new.pid, after=run)
    assert after.started_at.timestamp() >= returned[0]["t"]
    skipped = JobRun.objects.filter(job_name=SLOW, status="skipped", scheduled_for__gt=run.scheduled_for)
    skipped = skipped.filter(scheduled_for__lt=after.scheduled_for)
    assert skipped.count() >= 2
    assert all(reason in r.error or "still running" in r.error for r in skipped), [r.error for r in skipped]
    _assert_accounted(cluster, start=start, end=timezone.now() - timedelta(seconds=1.5))

"""Fencing: a process stopped inside a run for longer than the stale window, then resumed.

Two ``runjobs`` processes share the lease; the slow job works in steps of
0.2 s, each after a ``ctx.check()``. The leader is stopped (SIGSTOP) in the
middle of a run. The other process takes over, waits a stale window into its
term, closes the stopped run as lost and starts the job again. When the
stopped process resumes (SIGCONT), whatever the cluster decided meanwhile
wins: its run stops at its next check (no work beside the new run), the
record of the lost run is kept and says what happened after, and the new run
goes on undisturbed.
"""

from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from harness.cluster import MARGIN, PURGE, REAP_SLACK, SLOW, STALE_AFTER, TTL
from harness.cluster.evidence import live_leader_pid
from harness.cluster.processes import Cluster
from stayy.models import JobRun
from tests.cluster.support import MAIN_REDIS_URL
from tests.support import wait_until

STEP = 0.2


def _steps(cluster: Cluster, run_id: int) -> list[float]:
    return [e["t"] for e in cluster.exec_entries() if e["run_id"] == run_id and e["event"] == "step"]


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("redis_url", [MAIN_REDIS_URL, ""], ids=["redis-lease", "database-lease"])
def test_a_leader_stopped_inside_a_run_is_fenced_when_it_resumes(cluster: Cluster, redis_url: str) -> None:
    env = cluster.env(
        redis_url=redis_url,
        overrides={PURGE: {"enabled": False}, SLOW: {"enabled": True, "timeout": 120}},
        STAYY_TEST_SLOW_SECONDS="60",
        STAYY_TEST_SLOW_STEP=f"{STEP:g}",
    )
    p = cluster.runjobs("p", env=env)
    q = cluster.runjobs("q", env=env)
    leader = wait_until(lambda: live_leader_pid(cluster.job_name), timeout=15 + TTL, message="nobody leads")
    old = cluster.owner(leader)
    assert old in (p, q)
    new = q if old is p else p
    run = wait_until(
        lambda: JobRun.objects.filter(job_name=SLOW, status="running", pid=old.pid).first(),
        timeout=5,
        message="the leader started no run",
    )
    wait_until(lambda: _steps(cluster, run.pk), timeout=3, message=f"run {run.pk} made no step")

    old.signal(signal.SIGSTOP)
    stopped = time.monotonic()
    # The other process leads within the TTL, waits a stale window into its term, then reaps.
    wait_until(
        lambda: JobRun.objects.filter(pk=run.pk, status="failed", active=False).exists(),
        timeout=TTL + STALE_AFTER + REAP_SLACK + MARGIN,
        message=f"run {run.pk} of the stopped process was not closed",
    )
    assert time.monotonic() - stopped >= STALE_AFTER, "closed before its heartbeat was stale"
    successor = wait_until(
        lambda: JobRun.objects.filter(job_name=SLOW, status="running", pid=new.pid).first(),
        timeout=2 + MARGIN,
        message="the new leader did not run the job after the lost run was closed",
    )
    wait_until(lambda: _steps(cluster, successor.pk), timeout=3, message="the new run made no step")
    time.sleep(max(0.0, 2 * STALE_AFTER - (time.monotonic() - stopped)))
    stopped_for = time.monotonic() - stopped

    old.signal(signal.SIGCONT)
    resumed = time.time()
    row = wait_until(
        lambda: JobRun.objects.filter(pk=run.pk, error__contains="its process resumed").first(),
        timeout=MARGIN,
        message=f"the resumed run {run.pk} left no note of its end",
    )
    print(f"\n[fencing] stopped for {stopped_for:.1f} s; run {run.pk}: {row.error!r}")

    # Its record is the reaper's, with what happened after; never succeeded.
    assert row.status == "failed"
    assert row.error.startswith(f"process lost: {row.host}:{old.pid} stopped heartbeating"), row.error
    assert "cancelled: lost: " in row.error, row.error
    # It stopped at its next check: at most the step it was in when stopped, no more.
    late = [t for t in _steps(cluster, run.pk) if t > resumed]
    assert len(late) <= 1 and all(t < resumed + 1.0 for t in late), f"steps after resuming: {late}"

    # The run the cluster started meanwhile goes on, and is the only one executing.
    time.sleep(1.0)
    successor.refresh_from_db()
    assert (successor.status, successor.active) == ("running", True)
    assert _steps(cluster, successor.pk)[-1] > time.time() - 1.0, "the new run stopped stepping"
    executing = JobRun.objects.filter(job_name=SLOW, active=True)
    assert list(executing.values_list("pk", flat=True)) == [successor.pk]
    resumed_at = timezone.now() - timedelta(seconds=time.time() - resumed)
    started_after = JobRun.objects.filter(job_name=SLOW, pid=old.pid, started_at__gte=resumed_at)
    assert not started_after.exists(), "the resumed process started a run beside the new leader's"

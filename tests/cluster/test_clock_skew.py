"""One clock: a process whose host clock is 20 s ahead or behind changes nothing.

Two ``runjobs`` processes share a database lease; the second runs with its
wall clock shifted by an ``LD_PRELOAD`` shim (``clockshift/shift_realtime.c``:
only ``CLOCK_REALTIME`` moves, so timed waits stay true). While the first
leads, the shifted one neither takes the lease nor reaps a live run. Once the
first stops, the shifted one leads and fires every tick on time by the
database's clock: no tick missed, none twice, run times true.
"""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from harness.cluster import MARGIN, PURGE, SLOW, TTL
from harness.cluster.evidence import (
    assert_executed_once_per_tick,
    live_leader_pid,
    schedule_since,
    tick_accounting,
)
from harness.cluster.processes import Cluster
from stayy.models import JobRun, LeaderLease
from tests.support import wait_until

SHIM_SOURCE = Path(__file__).parent / "clockshift" / "shift_realtime.c"


def build_shim(tmp_path: Path) -> Path:
    shim = tmp_path / "shift_realtime.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(shim), str(SHIM_SOURCE), "-ldl"], check=True)
    return shim


def _assert_all_ticks_once(cluster: Cluster, *, start, end, stopped_pid: int) -> None:
    gaps, duplicates = tick_accounting(SLOW, start=start, end=end)
    assert not duplicates, f"ticks with two rows: {duplicates}"
    assert not gaps, f"ticks without a row: {[t.isoformat() for t in gaps]}"
    assert_executed_once_per_tick(cluster, SLOW, start=start, end=end)
    rows = JobRun.objects.filter(job_name=SLOW, scheduled_for__gte=start, scheduled_for__lte=end)
    # The run in flight when the first process stopped was cancelled by its shutdown: that is all.
    handover = [r for r in rows if (r.pid, r.error) == (stopped_pid, "cancelled: shutdown")]
    assert len(handover) <= 1, handover
    not_run = [
        (r.scheduled_for.isoformat(), r.status, r.error)
        for r in rows
        if r.status != "succeeded" and r not in handover
    ]
    assert not not_run, f"ticks not run: {not_run}"


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("shift", [20, -20], ids=["ahead", "behind"])
def test_a_host_clock_off_by_20_s_changes_nothing(cluster: Cluster, tmp_path: Path, shift: int) -> None:
    env = cluster.env(
        redis_url="",  # the database lease: its expiry is the one the hosts' clocks used to decide
        overrides={PURGE: {"enabled": False}, SLOW: {"enabled": True, "misfire_grace": 5}},
        STAYY_TEST_SLOW_SECONDS="0.3",
    )
    true = cluster.runjobs("true", env=env)
    wait_until(lambda: live_leader_pid(cluster.job_name) == true.pid, timeout=15 + TTL, message="no leader")
    start = schedule_since(SLOW) + timedelta(seconds=1)
    skewed_env = {**env, "LD_PRELOAD": str(build_shim(tmp_path)), "STAYY_CLOCK_SHIFT": str(shift)}
    skewed = cluster.runjobs("skewed", env=skewed_env)
    wait_until(
        lambda: "job server" in skewed.output() and "running" in skewed.output(),
        timeout=15,
        message=f"the skewed process did not start:\n{skewed.output()}",
    )

    # While the true process leads, the skewed one is only a candidate (for longer than a stale window).
    time.sleep(2 * TTL)
    lease = LeaderLease.objects.get(name=cluster.job_name)
    assert lease.pid == true.pid, f"the skewed process {skewed.pid} took the lease"
    assert not JobRun.objects.filter(pid=skewed.pid).exists(), "the skewed process ran or recorded ticks"
    assert not JobRun.objects.filter(error__startswith="process lost").exists(), "a live run was reaped"

    # The true process hands over; the skewed one leads by the database's clock.
    true.signal(signal.SIGTERM)
    assert true.wait(timeout=15) == 0
    wait_until(
        lambda: live_leader_pid(cluster.job_name) == skewed.pid, timeout=TTL + MARGIN, message="no takeover"
    )
    handover = timezone.now()
    time.sleep(3 * TTL)
    end = timezone.now() - timedelta(seconds=1.5)
    _assert_all_ticks_once(cluster, start=start, end=end, stopped_pid=true.pid)

    skewed_runs = JobRun.objects.filter(
        job_name=SLOW, pid=skewed.pid, status="succeeded", scheduled_for__gt=handover + timedelta(seconds=1)
    )
    assert skewed_runs.count() >= 2 * TTL, f"only {skewed_runs.count()} runs by the new leader"
    for run in skewed_runs:
        lateness = (run.started_at - run.scheduled_for).total_seconds()
        # On time by the cluster's clock: a quarter of the shift is a generous bound on a loaded
        # machine, and a run timed by the shifted host clock would be 20 s early or late.
        assert 0 <= lateness < abs(shift) / 4, f"run {run.pk} started {lateness:+.2f} s from its tick"
        assert timedelta(0) < run.finished_at - run.started_at < timedelta(seconds=2), run.duration_ms
    assert not JobRun.objects.filter(error__startswith="process lost").exists(), "a live run was reaped"

"""The Redis lease when Redis forgets it: claims stay in the database, so no tick executes twice.

Redis down for a while (killed or hung) is a fault test of its own, against a
private Redis: ``tests/faults/test_redis_outage.py``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
import redis
from django.utils import timezone

from harness.cluster import MARGIN, PURGE, SLOW, TTL
from harness.cluster.evidence import (
    assert_executed_once_per_tick,
    assert_no_concurrent_executions,
    exec_intervals,
    leader_row,
    live_leader_pid,
    schedule_since,
    tick_accounting,
)
from harness.cluster.processes import Cluster, Gunicorn
from stayy.models import JobRun
from tests.cluster.support import MAIN_REDIS_URL
from tests.support import wait_until


def _assert_every_tick_once(cluster: Cluster, *, start: datetime, end: datetime) -> None:
    for job in (PURGE, SLOW):
        gaps, duplicates = tick_accounting(job, start=start, end=end)
        assert not duplicates, f"{job}: ticks with two rows: {duplicates}"
        assert not gaps, f"{job}: ticks without a row: {[t.isoformat() for t in gaps]}"
        assert_executed_once_per_tick(cluster, job, start=start, end=end)
    assert_no_concurrent_executions(exec_intervals(cluster))


def _start_pair(cluster: Cluster, *, redis_url: str, slow_seconds: str) -> tuple[Gunicorn, Gunicorn]:
    env = cluster.env(
        redis_url=redis_url, overrides={SLOW: {"enabled": True}}, STAYY_TEST_SLOW_SECONDS=slow_seconds
    )
    a = cluster.gunicorn("a", env=env, workers=2)
    b = cluster.gunicorn("b", env=env, workers=2)
    a.wait_ready(workers=2)
    b.wait_ready(workers=2)
    wait_until(lambda: live_leader_pid(cluster.job_name), timeout=TTL + MARGIN, message="nobody leads")
    wait_until(lambda: JobRun.objects.filter(job_name=SLOW).exists(), timeout=MARGIN)
    return a, b


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_redis_forgets_the_lease(cluster: Cluster) -> None:
    _start_pair(cluster, redis_url=MAIN_REDIS_URL, slow_seconds="2")
    start = max(schedule_since(PURGE), schedule_since(SLOW)) + timedelta(seconds=1)
    client = redis.Redis.from_url(MAIN_REDIS_URL)
    key = f"stayy:lease:{cluster.job_name}"

    # Redis forgets the lease three times, each while the leader executes the slow job: the old
    # leader keeps scheduling until its next renew finds the key gone, while others may take it.
    forgotten = 0
    for _ in range(3):
        wait_until(
            lambda: JobRun.objects.filter(job_name=SLOW, status="running").exists(),
            timeout=MARGIN,
            message="the slow job is not executing",
        )
        forgotten += client.delete(key)
        time.sleep(TTL)
    assert forgotten == 3

    # Leadership settles on one process: the key, the lease row and the rows written agree.
    settle_from = timezone.now()
    time.sleep(TTL)
    token = client.get(key)
    assert token is not None, "nobody holds the lease after Redis forgot it"
    row = leader_row(cluster.job_name)
    assert row is not None and row.holder == token.decode(), "the lease row names another holder"
    writers = set(
        JobRun.objects.filter(
            trigger="schedule", created_at__gte=settle_from + timedelta(seconds=1)
        ).values_list("pid", flat=True)
    )
    assert writers == {row.pid}, f"after settling, ticks were written by {writers}, the leader is {row.pid}"
    assert client.get(key) == token, "the lease still changes hands"
    last_event: dict[int, str] = {}
    for record in cluster.records():
        message = record.get("message", "")
        if message.startswith(("became leader", "leadership of")):
            last_event[record["pid"]] = message
    leaders = [pid for pid, message in last_event.items() if message.startswith("became leader")]
    assert leaders == [row.pid], f"processes that think they lead: {leaders}"
    # Each time, the leader's next renew found the key gone and ended its term.
    noticed = sum(1 for r in cluster.records() if "lease lost to another candidate" in r.get("message", ""))
    assert noticed >= forgotten, f"leaders noticed {noticed} of {forgotten} forgotten leases"

    _assert_every_tick_once(cluster, start=start, end=timezone.now() - timedelta(seconds=1.5))

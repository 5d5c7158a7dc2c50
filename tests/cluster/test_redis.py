"""The Redis lease when Redis misbehaves: it forgets the lease, or it is down for a while.

Claims stay in the database, so neither may make a tick execute twice. An
outage — Redis killed (connections refused) or hung (SIGSTOP: connections
accepted, no answers, so every call ends in a socket timeout) — stops
scheduling (fail safe), is logged once per change of state, leaves the HTTP
side serving, and jobs resume within a candidate's poll once Redis is back.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
import redis
from django.utils import timezone

from stayy.models import JobRun
from tests.cluster.harness import (
    MAIN_REDIS_URL,
    MARGIN,
    PURGE,
    SLOW,
    TTL,
    Cluster,
    Gunicorn,
    RedisServer,
    assert_executed_once_per_tick,
    assert_no_concurrent_executions,
    exec_intervals,
    leader_row,
    live_leader_pid,
    schedule_since,
    tick_accounting,
    wait_until,
)


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


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["killed", "hung"])
def test_redis_outage(cluster: Cluster, redis_server: RedisServer, how: str) -> None:
    a, b = _start_pair(cluster, redis_url=redis_server.url, slow_seconds="0.5")
    start = max(schedule_since(PURGE), schedule_since(SLOW)) + timedelta(seconds=1)
    wait_until(
        lambda: JobRun.objects.filter(job_name=PURGE, status="succeeded").count() >= 3,
        timeout=MARGIN + 3,
        message="the purge job does not run",
    )
    job_servers = a.workers() | b.workers()

    if how == "killed":
        redis_server.kill()
    else:  # the process stops answering but its port still accepts connections
        redis_server.pause()
    down_at = timezone.now()
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        for instance in (a, b):
            statuses[instance.request("GET", "/api/schema/", timeout=5).status] += 1
        time.sleep(0.4)
    assert set(statuses) == {200}, f"/api/schema/ during the Redis outage: {dict(statuses)}"
    # Fail safe: once the lease cannot be renewed, nothing executes.
    late = JobRun.objects.filter(
        trigger="schedule",
        status__in=("succeeded", "failed", "running"),
        started_at__gt=down_at + timedelta(seconds=TTL),
    )
    assert not late.exists(), (
        f"ran without a lease: {list(late.values_list('job_name', 'scheduled_for', 'pid'))}"
    )

    if how == "killed":
        redis_server.start()
    else:
        redis_server.resume()
    up_at = timezone.now()
    up_mono = time.monotonic()
    wait_until(
        lambda: JobRun.objects.filter(job_name=PURGE, status="succeeded", started_at__gt=up_at).exists(),
        timeout=TTL + 2 * MARGIN,
        message="jobs did not resume after Redis came back",
    )
    resumed = time.monotonic() - up_mono
    print(f"\n[redis {how}] jobs resumed {resumed:.2f} s after Redis came back")
    # A candidate polls every second. A hung Redis runs the SET a candidate timed out on when it
    # resumes: that candidate must take the lease it holds, not leave it unused for a TTL.
    assert resumed <= 1 + 1.5, f"jobs resumed only after {resumed:.2f} s (TTL {TTL:g} s)"
    time.sleep(1.5)  # let every process notice the recovery, and the ticks in flight land

    # The problem is logged once per change of state by each process, not once per attempt.
    records = [r for r in cluster.records() if r.get("logger") == "stayy.jobs"]
    problems = Counter(r["pid"] for r in records if r["message"].endswith("not scheduling until it recovers"))
    recoveries = Counter(r["pid"] for r in records if r["message"].endswith("dependencies reachable again"))
    assert set(problems) == job_servers, f"processes that logged the outage: {problems}, all: {job_servers}"
    assert all(n == 1 for n in problems.values()), f"outage logged repeatedly: {problems}"
    assert recoveries == problems, f"recoveries logged {recoveries}, problems {problems}"
    _assert_every_tick_once(cluster, start=start, end=timezone.now() - timedelta(seconds=1.5))

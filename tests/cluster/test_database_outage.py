"""The test database refuses connections for a while (the shared server keeps running).

``ALTER DATABASE … ALLOW_CONNECTIONS false`` plus terminating its backends
makes this test's database unreachable for every process of the cluster, and
for nothing else on the machine. The scheduler must fail safe (nothing runs,
no tick twice), say so once per change of state in each process rather than
on every attempt, keep serving HTTP that does not need the database, and
resume by itself.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from datetime import timedelta

import pytest
import redis
from django.db import connection
from django.utils import timezone

from harness.cluster import MARGIN, PURGE, SLOW, TTL
from harness.cluster.evidence import (
    assert_executed_once_per_tick,
    live_leader_pid,
    schedule_since,
    tick_accounting,
)
from harness.cluster.processes import Cluster
from stayy.models import JobRun
from tests.cluster.support import MAIN_REDIS_URL
from tests.support import wait_until

OUTAGE = 10.0


def _psql(sql: str) -> None:
    s = connection.settings_dict
    argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", s.get("HOST") or "127.0.0.1"]
    argv += ["-p", str(s.get("PORT") or 5432), "-U", s["USER"], "-d", "postgres", "-c", sql]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_database_refuses_connections(cluster: Cluster) -> None:
    # With the lease in Redis, candidates can take the lease while the database is down.
    env = cluster.env(
        redis_url=MAIN_REDIS_URL,
        overrides={SLOW: {"enabled": True}},
        STAYY_TEST_SLOW_SECONDS="0.3",
    )
    a = cluster.gunicorn("a", env=env, workers=2)
    b = cluster.gunicorn("b", env=env, workers=2)
    a.wait_ready(workers=2)
    b.wait_ready(workers=2)
    wait_until(lambda: live_leader_pid(cluster.job_name), timeout=TTL + MARGIN, message="nobody leads")
    wait_until(
        lambda: JobRun.objects.filter(job_name=PURGE, status="succeeded").count() >= 3,
        timeout=MARGIN + 3,
        message="the purge job does not run",
    )
    start = max(schedule_since(PURGE), schedule_since(SLOW)) + timedelta(seconds=1)
    job_servers = a.workers() | b.workers()
    name = connection.settings_dict["NAME"]
    connection.close()

    _psql(
        f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false; '
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    )
    try:
        deadline = time.monotonic() + OUTAGE
        statuses: Counter[int] = Counter()
        while time.monotonic() < deadline:
            for instance in (a, b):
                statuses[instance.request("GET", "/healthz", timeout=5).status] += 1
            time.sleep(0.5)
        # A process that took the lease but could not start its term (no database) gave it back
        # at once, rather than sitting on it for a TTL while another process might lead.
        holder = redis.Redis.from_url(MAIN_REDIS_URL).get(f"stayy:lease:{cluster.job_name}")
    finally:
        _psql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    back_at = timezone.now()
    back = time.monotonic()
    assert set(statuses) == {200}, f"/healthz during the outage: {dict(statuses)}"
    assert holder is None, "a process sits on the lease while the database is down"

    wait_until(
        lambda: JobRun.objects.filter(job_name=PURGE, status="succeeded", started_at__gt=back_at).exists(),
        timeout=TTL + 3 * MARGIN,
        message="jobs did not resume after the database came back",
    )
    resumed = time.monotonic() - back
    time.sleep(2)
    print(f"\n[database outage] jobs resumed {resumed:.2f} s after the database was back")

    records = [r for r in cluster.records() if r.get("logger") == "stayy.jobs"]
    problems = Counter(r["pid"] for r in records if r["message"].endswith("not scheduling until it recovers"))
    recoveries = Counter(r["pid"] for r in records if r["message"].endswith("dependencies reachable again"))
    assert set(problems) <= job_servers
    assert problems, "nobody logged the outage"
    # At most twice: the first error may differ from the next ("terminating connection", then
    # "not accepting connections"); a lease expiry every TTL must not log it again.
    assert all(n <= 2 for n in problems.values()), f"outage logged again and again: {problems}"
    assert all(n == 1 for n in recoveries.values()), f"recovery logged again and again: {recoveries}"
    assert set(recoveries) == set(problems), f"problems {problems}, recoveries {recoveries}"
    assert resumed <= TTL + 2 * MARGIN, f"jobs resumed only after {resumed:.2f} s"
    end = timezone.now() - timedelta(seconds=1.5)
    for job in (PURGE, SLOW):
        gaps, duplicates = tick_accounting(job, start=start, end=end)
        assert not duplicates, f"{job}: ticks with two rows: {duplicates}"
        assert not gaps, f"{job}: ticks without a row: {[t.isoformat() for t in gaps]}"
        assert_executed_once_per_tick(cluster, job, start=start, end=end)

"""One instance cut off from PostgreSQL and Redis by a silent partition: it answers, and hands over.

Instance A (gunicorn, 2 workers, jobs on) runs in a network namespace of its
own and leads; instance B runs on the host against the same private servers.
Then the router between A and the servers drops every PostgreSQL and Redis
packet, both ways, with no reset and no error (:mod:`tests.faults.partition`),
for twice the longest a database call can wait plus a margin; HTTP to A still
passes. Meanwhile as many clients as a worker has threads call an endpoint
that needs the database (a worker may have every thread busy with them), and
a probe calls ``/healthz``. With the lease in Redis, and in the database.
Checked:

* while cut off, A answers every request — ``/healthz`` 200, the others 503 —
  within the longest database wait (``tcp_user_timeout`` on the connection,
  then Django's one reconnect, ``connect_timeout``) plus a margin;
* B leads within the lease TTL plus a margin; A starts no run after its lease
  expired, nor leads again after the partition; A's leader ends its term, and
  says so, within the lease TTL plus a margin;
* after the partition A answers normally within ``connect_timeout`` plus a
  margin, and over the whole window every tick left one row and executed at
  most once, and no two runs of the slow job overlapped.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from harness.cluster import MARGIN, PURGE, SLOW, TTL
from harness.cluster.evidence import (
    assert_executed_once_per_tick,
    assert_no_concurrent_executions,
    exec_intervals,
    live_leader_pid,
    schedule_since,
    scheduled_rows,
    tick_accounting,
)
from harness.faults.load import Answer, HttpLoad, statuses
from harness.faults.rig import ALIAS, PRODUCTION, Rig
from harness.faults.scenarios import Report
from stayy.models import JobRun
from tests.faults.partition import Partition
from tests.support import wait_until

WORKERS = 2
#: Threads per gunicorn worker (``GUNICORN_THREADS``); as many clients call A's database endpoint.
THREADS = 4
PROBE_PATH = "/healthz"
DB_PATH = "/api/users/me/"


def _database_waits() -> tuple[float, float]:
    """``tcp_user_timeout`` and ``connect_timeout`` (s) of the service's PostgreSQL connections."""
    options = settings.DATABASES["default"]["OPTIONS"]
    return options["tcp_user_timeout"] / 1000, float(options["connect_timeout"])


def _wait_in(answer: Answer, since: float) -> float:
    """How long a request waited from ``since`` (or its start, if later) to its answer."""
    return answer.end - max(answer.start, since)


def _log_delay(records: list[dict[str, Any]], *, pid: int, prefix: str, since: datetime) -> float | None:
    """Seconds from ``since`` to the first line of ``pid`` starting with ``prefix``, written after it."""
    for record in records:
        if record.get("pid") == pid and record.get("message", "").startswith(prefix):
            written = datetime.fromisoformat(record["ts"])
            if written >= since:
                return (written - since).total_seconds()
    return None


@pytest.mark.processes
@pytest.mark.parametrize("lease", ["redis", "database"])
def test_an_instance_cut_off_from_its_servers_answers_and_hands_over(
    partitioned_rig: tuple[Rig, Partition], lease: str
) -> None:
    rig, net = partitioned_rig
    user_timeout, connect_timeout = _database_waits()
    db_wait = user_timeout + connect_timeout  # a dead connection's call gives up, then one reconnect
    partition = db_wait + 2 * MARGIN  # requests sent at the cut give up (503) well before it heals
    job_name = rig.cluster.job_name
    report = Report(f"network partition, lease in {lease}")

    redis_url = rig.redis.url if lease == "redis" else ""  # no REDIS_URL: the lease is in the database
    env_b = {
        **rig.cluster.env(redis_url=redis_url, overrides={SLOW: {"enabled": True}}),
        **PRODUCTION,
        "STAYY_TEST_SLOW_SECONDS": "0.5",
        "GUNICORN_THREADS": str(THREADS),
    }
    env_a = {
        **env_b,
        "DATABASE_URL": rig.postgres.url(rig.database, host=net.host_ip),
        "REDIS_URL": rig.redis.url_at(net.host_ip) if lease == "redis" else "",
        "DJANGO_ALLOWED_HOSTS": net.instance_ip,
    }
    web_a = rig.cluster.gunicorn("a", env=env_a, workers=WORKERS, host=net.instance_ip, wrap=net.wrap)
    web_a.wait_ready(workers=WORKERS)
    leader = wait_until(
        lambda: live_leader_pid(job_name, using=ALIAS), timeout=TTL + MARGIN, message="A does not lead"
    )
    a_pids = web_a.workers()
    assert leader in a_pids
    web_b = rig.cluster.gunicorn("b", env=env_b, workers=WORKERS)
    web_b.wait_ready(workers=WORKERS)
    start = max(schedule_since(PURGE, using=ALIAS), schedule_since(SLOW, using=ALIAS)) + timedelta(seconds=1)

    # As many clients as one worker has threads: a worker may have every thread busy with the database
    # (and /healthz wait behind them), but no request waits behind another of its kind.
    db_load = HttpLoad([web_a.url], [DB_PATH], token=rig.api_token(), threads=THREADS)
    probe = HttpLoad([web_a.url], [PROBE_PATH], threads=1, pause=0.5)
    for load in (db_load, probe):
        load.timeout = partition + MARGIN  # a hang shows as a long wait, not as the client giving up
        load.start()
    try:
        time.sleep(1)
        assert live_leader_pid(job_name, using=ALIAS) == leader, "A no longer leads before the partition"
        # Delays are counted from just before the cut, requests that must fail from just after it.
        cutting_wall = timezone.now()
        cutting_at = time.monotonic()
        net.cut([rig.postgres.port, rig.redis.port])
        cut_at = time.monotonic()
        new_leader = wait_until(
            lambda: live_leader_pid(job_name, other_than=a_pids, using=ALIAS),
            timeout=partition - 1,
            interval=0.1,
            message="nobody took over from A",
        )
        failover = time.monotonic() - cutting_at
        time.sleep(max(0.0, cutting_at + partition - time.monotonic()))
        dropped = net.dropped()
        net.heal()
        healed_at = time.monotonic()
        # Long enough for A to lead a second time, if it wrongly would.
        time.sleep(connect_timeout + TTL + MARGIN)
    finally:
        answers = db_load.stop() + probe.stop()
    end = timezone.now() - timedelta(seconds=1.5)

    during = [ans for ans in answers if ans.start < healed_at and ans.end > cutting_at]
    settled = [ans for ans in during if ans.start >= cut_at and ans.end < healed_at]
    after = [ans for ans in answers if ans.start >= healed_at]
    recovered_in = max((ans.end - healed_at for ans in after if not ans.ok), default=0.0)
    records = web_a.records()
    noticed = _log_delay(records, pid=leader, prefix=f"leadership of {job_name} ended", since=cutting_wall)
    led_again = [
        pid
        for pid in a_pids
        if _log_delay(records, pid=pid, prefix="became leader", since=cutting_wall) is not None
    ]
    expired_at = cutting_wall + timedelta(seconds=TTL + MARGIN)
    late_runs = list(
        JobRun.objects.using(ALIAS)
        .filter(Q(created_at__gt=expired_at) | Q(started_at__gt=expired_at), pid__in=a_pids)
        .values_list("pk", "job_name", "trigger", "status")
    )
    longest = {
        path: max((_wait_in(ans, cutting_at) for ans in during if ans.path == path), default=0.0)
        for path in (PROBE_PATH, DB_PATH)
    }
    report.figures.update(
        {
            "partition (s)": round(healed_at - cutting_at, 1),
            "packets dropped": dropped,
            "database wait bound (tcp_user_timeout + connect_timeout, s)": db_wait,
            "B leads after (s)": round(failover, 2),
            "A's leader said its term ended after (s)": None if noticed is None else round(noticed, 2),
            "answers to requests sent while cut off": {
                path: statuses(ans for ans in settled if ans.path == path) for path in (PROBE_PATH, DB_PATH)
            },
            "longest wait while cut off (s)": {path: round(wait, 2) for path, wait in longest.items()},
            "answers after the partition": statuses(after),
            "A answered normally again after (s)": round(recovered_in, 2),
            "ticks by job and status": {
                job: dict(Counter(r.status for r in scheduled_rows(job, start=start, end=end, using=ALIAS)))
                for job in (PURGE, SLOW)
            },
        }
    )
    report.check(dropped > 0, "the router dropped nothing: the partition did not cut A off")

    # A answered while cut off: nothing waited on a dead peer for long.
    report.check(bool(during), "no request reached A during the partition")
    for path, wait in longest.items():
        report.check(wait <= db_wait + MARGIN, f"{path} waited {wait:.1f} s while A was cut off")
    for path, expected in ((PROBE_PATH, {200}), (DB_PATH, {503})):
        got = {ans.status for ans in settled if ans.path == path}
        report.check(got <= expected, f"{path} answered {got} while A was cut off, expected {expected}")

    # B took over, and A stopped leading: it ran nothing as a second leader, while cut off or after.
    report.check(new_leader in web_b.workers(), f"the new leader {new_leader} is not one of B's workers")
    report.check(failover <= TTL + MARGIN, f"B led {failover:.1f} s after the partition began")
    report.check(
        noticed is not None and noticed < partition, "A's leader did not say its term ended while cut off"
    )
    report.check(not late_runs, f"A started runs after its lease expired: {late_runs}")
    report.check(not led_again, f"A's workers {led_again} led again after the partition")
    report.check(live_leader_pid(job_name, using=ALIAS) in web_b.workers(), "B no longer leads")
    for job in (PURGE, SLOW):
        gaps, duplicates = tick_accounting(job, start=start, end=end, using=ALIAS)
        report.check(not gaps, f"{job}: ticks without a row {[t.isoformat() for t in gaps]}")
        report.check(not duplicates, f"{job}: ticks with two rows {duplicates}")
        report.check_call(
            functools.partial(
                assert_executed_once_per_tick, rig.cluster, job, start=start, end=end, using=ALIAS
            )
        )
    report.check_call(lambda: assert_no_concurrent_executions(exec_intervals(rig.cluster)))

    # After the partition A answers normally again.
    report.check(bool(after), "no request reached A after the partition")
    report.check(recovered_in <= connect_timeout + MARGIN, f"A answered normally {recovered_in:.1f} s late")

    # A's leader knows its term is over once its lease can have expired, whatever call it is in.
    report.check(
        noticed is not None and noticed <= TTL + MARGIN,
        f"A's leader said its term ended {noticed and round(noticed, 2)} s after the partition began "
        f"(lease TTL {TTL:g} s)",
    )
    print("\n" + report.text())
    assert report.ok, report.text()

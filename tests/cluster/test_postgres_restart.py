"""A PostgreSQL restart while a job executes: the service recovers by itself.

This machine's PostgreSQL is shared by everything on it, so this is the only
test of the suite that restarts it, once, in a module of its own: anything
else using the server at that moment sees its connections dropped.
Afterwards the next runs succeed without restarting the service, and no run
stays ``running`` beyond the stale bound.
"""

from __future__ import annotations

import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from stayy.models import JobRun
from tests.cluster.harness import (
    MAIN_REDIS_URL,
    MARGIN,
    PURGE,
    REAP_SLACK,
    SLOW,
    STALE_AFTER,
    TTL,
    Cluster,
    live_leader_pid,
    wait_until,
)


def _restart_postgres() -> float:
    """Restart the local cluster; returns how long it took."""
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    assert versions, "no PostgreSQL cluster in /etc/postgresql"
    began = time.monotonic()
    done = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return time.monotonic() - began


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_postgres_restart_during_a_run(cluster: Cluster) -> None:
    env = cluster.env(
        redis_url=MAIN_REDIS_URL, overrides={SLOW: {"enabled": True}}, STAYY_TEST_SLOW_SECONDS="3"
    )
    web = cluster.gunicorn("web", env=env, workers=2)
    web.wait_ready(workers=2)
    wait_until(lambda: live_leader_pid(cluster.job_name), timeout=TTL + MARGIN, message="nobody leads")
    wait_until(
        lambda: JobRun.objects.filter(job_name=PURGE, status="succeeded").count() >= 2,
        timeout=MARGIN + 2,
        message="the purge job does not run",
    )
    in_flight = wait_until(
        lambda: JobRun.objects.filter(
            job_name=SLOW, status="running", started_at__gte=timezone.now() - timedelta(seconds=0.5)
        ).first(),
        timeout=6,
        interval=0.05,
        message="no fresh run of the slow job",
    )

    took = _restart_postgres()
    connection.close()  # this test's own connection died with the server
    back_at = timezone.now()
    back = time.monotonic()

    # The next runs succeed, in the same processes: nothing was restarted but PostgreSQL.
    wait_until(
        lambda: JobRun.objects.filter(job_name=PURGE, status="succeeded", started_at__gt=back_at).exists(),
        timeout=TTL + 3 * MARGIN,
        message="no purge run succeeded after the restart",
    )
    recovered = time.monotonic() - back
    wait_until(
        lambda: JobRun.objects.filter(
            job_name=SLOW, status="succeeded", started_at__gt=back_at, pk__gt=in_flight.pk
        ).exists(),
        timeout=TTL + 3 + 3 * MARGIN,
        message="no slow run succeeded after the restart",
    )
    # The run in flight during the restart is closed, by its own process or as lost, in time.
    wait_until(
        lambda: JobRun.objects.filter(pk=in_flight.pk, active=False).exclude(status="running").exists(),
        timeout=STALE_AFTER + REAP_SLACK + MARGIN,
        message=f"run {in_flight.pk}, in flight during the restart, is still open",
    )
    in_flight.refresh_from_db()
    print(
        f"\n[postgres restart] took {took:.2f} s; first purge success {recovered:.2f} s later; "
        f"the run in flight ended {in_flight.status} {in_flight.error!r}"
    )
    assert recovered <= TTL + 2 * MARGIN, f"jobs resumed {recovered:.2f} s after PostgreSQL was back"
    stale = timezone.now() - timedelta(seconds=STALE_AFTER)
    stuck = JobRun.objects.filter(status="running").filter(heartbeat_at__lt=stale)
    assert not stuck.exists(), (
        f"runs left running: {list(stuck.values_list('pk', 'job_name', 'heartbeat_at'))}"
    )
    assert web.running() and len(web.workers()) == 2
    assert not [
        r for r in cluster.records() if r.get("level") == "ERROR" and "Traceback" in (r.get("exc_info") or "")
    ]

"""Exactly-once effects for an atomic job: ``kill -9`` in the middle of a run, then the retry.

``testing.atomic`` (atomic, 3 retries) writes one user per tick and then works
in statements. Two ``runjobs`` processes share the lease; the leader is killed
while a run is between its write and its end. The write dies with the
process's transaction; the new leader closes the run as lost and retries it;
the retry writes the tick's user. Every tick that succeeded, by a first run or
a retry, has its user exactly once.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

import pytest
from django.utils import timezone

from harness.cluster import MARGIN, PURGE, REAP_SLACK, STALE_AFTER, TTL
from harness.cluster.evidence import live_leader_pid
from harness.cluster.processes import Cluster
from stayy.models import JobRun
from tests.cluster.support import MAIN_REDIS_URL
from tests.support import wait_until
from users.models import User

ATOMIC = "testing.atomic"


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_a_killed_atomic_run_leaves_no_write_and_its_retry_writes_once(cluster: Cluster) -> None:
    env = cluster.env(
        redis_url=MAIN_REDIS_URL,
        overrides={PURGE: {"enabled": False}, ATOMIC: {"enabled": True}},
        STAYY_TEST_SLOW_SECONDS="1.5",
    )
    cluster.runjobs("p", env=env)
    cluster.runjobs("q", env=env)
    victim = wait_until(lambda: live_leader_pid(cluster.job_name), timeout=15 + TTL, message="nobody leads")
    started = {e["run_id"] for e in cluster.exec_entries() if e["event"] == "start"}
    run = wait_until(
        lambda: (
            JobRun.objects.filter(job_name=ATOMIC, status="running", pid=victim)
            .exclude(pk__in=started)
            .first()
        ),
        timeout=5,
        message="the leader started no atomic run",
    )
    wait_until(
        lambda: any(e["run_id"] == run.pk and e["event"] == "start" for e in cluster.exec_entries()),
        timeout=3,
        message=f"run {run.pk} did not write",
    )
    os.kill(victim, signal.SIGKILL)

    retry = wait_until(
        lambda: JobRun.objects.filter(retry_of=run.pk, status="succeeded").first(),
        timeout=TTL + STALE_AFTER + REAP_SLACK + 2 * MARGIN,
        message=f"run {run.pk} of the killed leader was not retried to success",
    )
    run.refresh_from_db()
    assert (run.status, run.active) == ("failed", False) and run.error.startswith("process lost"), run.error
    assert (retry.trigger, retry.attempt, retry.scheduled_for) == ("retry", 1, run.scheduled_for)
    # A few more ticks after the failover, then the books are closed.
    after = timezone.now()
    wait_until(
        lambda: JobRun.objects.filter(job_name=ATOMIC, status="succeeded", started_at__gt=after).count() >= 2,
        timeout=6 + MARGIN,
        message="the new leader does not run the job",
    )
    cluster.kill_all()

    def tick_key(when) -> str:
        return f"{when:%Y%m%d%H%M%S}"

    users = Counter(
        name.split("-r")[0].removeprefix("atomic-")
        for name in User.objects.values_list("username", flat=True)
        if name.startswith("atomic-")
    )
    succeeded = {
        tick_key(r.scheduled_for) for r in JobRun.objects.filter(job_name=ATOMIC, status="succeeded")
    }
    assert not User.objects.filter(username=f"atomic-{tick_key(run.scheduled_for)}-r{run.pk}").exists()
    assert users[tick_key(run.scheduled_for)] == 1, "the killed tick's effect is not there exactly once"
    twice = {tick: n for tick, n in users.items() if n != 1}
    assert not twice, f"ticks whose effect is there more than once: {twice}"
    assert set(users) == succeeded, (
        f"effects without a succeeded run, or the reverse: {set(users) ^ succeeded}"
    )
    assert len(succeeded) >= 3

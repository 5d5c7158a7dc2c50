"""Cluster-wide controls sent to an instance that does not lead: pause, resume and run now.

The API only writes rows; the leader, in the other instance, polls them and
acts within about a second, and runs a run-now itself (never in the request).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from harness.cluster import MARGIN, PURGE
from harness.cluster.evidence import live_leader_pid, tick_accounting
from harness.cluster.processes import Cluster
from stayy.models import JobRun
from tests.cluster.conftest import TwoInstances
from tests.support import wait_until

#: The leader polls the controls every half second; "within 2 s" leaves room for a tick in flight.
CONTROL_BOUND = 2.0
SLACK = 1.0


def _scheduled_created_after(moment: datetime) -> list[JobRun]:
    return list(JobRun.objects.filter(job_name=PURGE, trigger="schedule", created_at__gt=moment))


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_pause_resume_and_run_now_from_a_non_leader(cluster: Cluster, two_instances: TwoInstances) -> None:
    follower, token = two_instances.follower, two_instances.token
    path = f"/api/jobs/{PURGE}"

    # Pause: the scheduled runs stop within the bound, and stay stopped.
    answer = follower.request("POST", f"{path}/pause/", token=token)
    paused_at = timezone.now()
    assert answer.status == 200, answer.body
    assert answer.json()["paused"] is True
    time.sleep(CONTROL_BOUND + SLACK + 2)
    late = _scheduled_created_after(paused_at + timedelta(seconds=CONTROL_BOUND + SLACK))
    assert not late, f"runs after the pause: {[(r.scheduled_for, r.status) for r in late]}"
    stopped = _scheduled_created_after(paused_at)
    assert len(stopped) <= CONTROL_BOUND + SLACK, f"{len(stopped)} ticks after the pause"

    # Resume: runs again within the bound; the ticks of the pause are not owed (no missed rows).
    answer = follower.request("POST", f"{path}/resume/", token=token)
    resumed_at = timezone.now()
    resumed_mono = time.monotonic()
    assert answer.status == 200, answer.body
    assert answer.json()["paused"] is False
    first = wait_until(
        lambda: JobRun.objects.filter(
            job_name=PURGE, trigger="schedule", status="succeeded", created_at__gt=resumed_at
        ).first(),
        timeout=CONTROL_BOUND + MARGIN,
        message="no run after resume",
    )
    resumed_after = time.monotonic() - resumed_mono
    assert resumed_after <= CONTROL_BOUND + SLACK, f"first run {resumed_after:.2f} s after resume"
    assert first.pid == live_leader_pid(cluster.job_name)
    missed = JobRun.objects.filter(job_name=PURGE, status="missed", created_at__gt=paused_at)
    assert not missed.exists(), f"pause ticks recorded as missed: {list(missed.values_list('scheduled_for'))}"
    time.sleep(2)
    gaps, duplicates = tick_accounting(
        PURGE, start=first.scheduled_for, end=timezone.now() - timedelta(seconds=1.5)
    )
    assert not gaps and not duplicates, (gaps, duplicates)

    # Run now: queued by the follower, executed by the leader, not in the request.
    answer = follower.request("POST", f"{path}/run/", token=token)
    requested = time.monotonic()
    assert answer.status == 202, answer.body
    run_id = answer.json()["run_id"]
    run = wait_until(
        lambda: JobRun.objects.filter(pk=run_id, status="succeeded").first(),
        timeout=CONTROL_BOUND + MARGIN,
        message=f"manual run {run_id} did not run",
    )
    took = time.monotonic() - requested
    leader_now = live_leader_pid(cluster.job_name)
    print(f"\n[controls] pause/resume/run-now via a follower; manual run done after {took:.2f} s")
    assert run.trigger == "manual" and run.requested_by == "ops"
    assert run.pid == leader_now, f"manual run executed by {run.pid}, the leader is {leader_now}"
    assert run.pid not in follower.workers()
    assert took <= CONTROL_BOUND + SLACK, f"manual run finished {took:.2f} s after the request"

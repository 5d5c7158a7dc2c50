"""``runjobs --run`` while the job executes in a gunicorn worker: refused (exit 3) unless ``--force``."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from harness.cluster import SLOW, TTL
from harness.cluster.evidence import live_leader_pid
from harness.cluster.processes import Cluster
from stayy.models import JobRun
from tests.cluster.support import MAIN_REDIS_URL
from tests.support import PROJECT_DIR, wait_until


def _runjobs(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = cluster.env(
        redis_url=MAIN_REDIS_URL,
        overrides={SLOW: {"enabled": True}},
        JOB_ENABLE="0",
        STAYY_TEST_SLOW_SECONDS="0.5",
    )
    return subprocess.run(
        [sys.executable, "manage.py", "runjobs", "--run", SLOW, *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_run_command_refuses_while_a_worker_executes_the_job(cluster: Cluster) -> None:
    env = cluster.env(
        redis_url=MAIN_REDIS_URL, overrides={SLOW: {"enabled": True}}, STAYY_TEST_SLOW_SECONDS="8"
    )
    web = cluster.gunicorn("web", env=env, workers=2)
    web.wait_ready(workers=2)
    wait_until(lambda: live_leader_pid(cluster.job_name), timeout=TTL + 3, message="nobody leads")
    # A run that has just started has ~8 s left: enough for the command to start and look.
    running = wait_until(
        lambda: JobRun.objects.filter(
            job_name=SLOW, status="running", started_at__gte=timezone.now() - timedelta(seconds=1)
        ).first(),
        timeout=12,
        message="no fresh run of the slow job",
    )
    assert running.pid in web.workers()

    refused = _runjobs(cluster)
    checked_at = timezone.now()
    assert refused.returncode == 3, refused.stdout + refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, refused.stderr
    assert f"run {running.pk} on {running.host} pid {running.pid}" in lines[0], lines[0]
    assert "--force" in lines[0]
    running.refresh_from_db()
    assert running.finished_at is None or running.finished_at > checked_at - timedelta(seconds=1)
    assert not JobRun.objects.filter(job_name=SLOW, trigger="command").exists()

    started = time.monotonic()
    forced = _runjobs(cluster, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert time.monotonic() - started < 30
    command_run = JobRun.objects.get(job_name=SLOW, trigger="command")
    assert command_run.status == "succeeded"
    assert f"{SLOW}: succeeded in" in forced.stdout and f"(run {command_run.pk})" in forced.stdout
    assert command_run.pid not in web.workers()

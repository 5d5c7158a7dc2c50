"""Real gunicorn with embedded jobs: workers serve HTTP while one of them leads; SIGTERM stops cleanly."""

from __future__ import annotations

import signal
import uuid

import httpx
import pytest
from django.utils import timezone

from stayy.conf import stayy_settings
from stayy.models import JobRun, LeaderLease
from tests.jobs.support import (
    BIN_DIR,
    every_second,
    free_port,
    parent_pid,
    run_rows,
    running,
    subprocess_env,
    wait_until,
)

PURGE = "stayy.purge_job_runs"
Status = JobRun.Status
SHUTDOWN_GRACE = 3


@pytest.mark.processes
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "preload",
    [
        pytest.param(False, id="fork-then-load"),
        pytest.param(True, id="preload"),
        pytest.param(False, id="sqlite-default", marks=pytest.mark.sqlite),
    ],
)
def test_gunicorn_with_embedded_jobs(tmp_path, preload):
    port = free_port()
    job_name = f"test-gu-{uuid.uuid4().hex[:8]}"
    env = subprocess_env(
        GUNICORN_WORKERS="2",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_ACCESS_LOG="",
        JOB_ENABLE="1",
        JOB_NAME=job_name,
        JOB_OVERRIDES=every_second(PURGE),
        JOB_SHUTDOWN_GRACE=str(SHUTDOWN_GRACE),
    )
    argv = [str(BIN_DIR / "gunicorn"), "-c", "gunicorn.conf.py", *(["--preload"] if preload else [])]
    graceful_timeout = SHUTDOWN_GRACE + 10  # gunicorn.conf.py: JOB_SHUTDOWN_GRACE + 10

    with running(argv, env=env, log_path=tmp_path / "gunicorn.log") as master:
        first = wait_until(
            lambda: run_rows(job_name=PURGE, status=Status.SUCCEEDED), timeout=60, interval=0.2
        )[0]
        leader_pid = first.pid
        assert leader_pid != master.pid, "the gunicorn master ran a job"
        assert parent_pid(leader_pid) == master.pid, "runs recorded by a process that is not a worker"
        assert LeaderLease.objects.get(name=job_name).pid == leader_pid

        # HTTP keeps answering while the jobs run.
        asked_at = timezone.now()
        response = httpx.get(f"http://127.0.0.1:{port}/api/schema/", timeout=30)
        assert response.status_code == 200, response.text[:500]
        assert b"openapi" in response.content
        wait_until(
            lambda: run_rows(job_name=PURGE, status=Status.SUCCEEDED, scheduled_for__gt=asked_at),
            timeout=10,
            message="no run after the HTTP request",
        )

        rows = run_rows(job_name=PURGE)
        ticks = [r.scheduled_for for r in rows]
        assert len(set(ticks)) == len(ticks)
        assert {r.pid for r in rows} == {leader_pid}, "two workers ran ticks"
        assert {r.trigger for r in rows} == {JobRun.Trigger.SCHEDULE}

        master.signal(signal.SIGTERM)
        assert master.wait(timeout=graceful_timeout + 5) == 0, master.output()

    lease = LeaderLease.objects.get(name=job_name)
    assert lease.holder == "", f"lease still held by {lease.host}:{lease.pid}"
    if stayy_settings.redis_url:
        import redis

        assert not redis.Redis.from_url(stayy_settings.redis_url).exists(f"stayy:lease:{job_name}")
    assert JobRun.objects.filter(status=Status.RUNNING).count() == 0
    assert JobRun.objects.filter(active=True).count() == 0

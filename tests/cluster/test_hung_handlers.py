"""Hung handlers: a handler that ignores its cancellation past its timeout and the shutdown grace.

A Python thread cannot be killed, so the process leaves: ``runjobs --run``
exits 1 at that moment, a gunicorn worker stops gracefully and its master
starts another, and the standalone ``runjobs`` server exits 1. The run is
recorded ``timed_out``, "abandoned: process exited", and no longer holds the
job, so the cluster runs it again.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from harness.cluster import MARGIN, PURGE, SLOW, TTL
from harness.cluster.evidence import live_leader_pid
from harness.cluster.processes import Cluster
from stayy.models import JobRun
from tests.cluster.support import MAIN_REDIS_URL
from tests.support import PROJECT_DIR, wait_until

TIMEOUT, GRACE = 1.0, 1.5


def _hung_env(cluster: Cluster) -> dict[str, str]:
    return cluster.env(
        redis_url=MAIN_REDIS_URL,
        overrides={PURGE: {"enabled": False}, SLOW: {"enabled": True, "timeout": TIMEOUT}},
        STAYY_TEST_SLOW_SECONDS="600",
        STAYY_TEST_SLOW_IGNORE_CANCEL="1",
        JOB_SHUTDOWN_GRACE=f"{GRACE:g}",
    )


def _assert_abandoned(run: JobRun) -> None:
    assert (run.status, run.active) == ("timed_out", False), (run.status, run.active, run.error)
    assert run.error.startswith(f"timed out after {TIMEOUT:g} s; cancellation requested"), run.error
    assert "abandoned: process exited" in run.error, run.error


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_runjobs_run_exits_1_when_the_handler_ignores_its_cancellation(cluster: Cluster) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "manage.py", "runjobs", "--run", SLOW],
        cwd=PROJECT_DIR,
        env=_hung_env(cluster),
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "ignored its cancellation" in result.stderr and "exiting" in result.stderr, result.stderr
    assert took < TIMEOUT + GRACE + 15, f"exited after {took:.1f} s"  # 15: interpreter start-up
    (run,) = JobRun.objects.filter(job_name=SLOW, trigger="command")
    _assert_abandoned(run)


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_a_gunicorn_worker_with_a_hung_handler_leaves_and_is_replaced(cluster: Cluster) -> None:
    server = cluster.gunicorn("a", env=_hung_env(cluster), workers=1)
    server.wait_ready(workers=1)
    (first_worker,) = server.workers()
    wait_until(lambda: live_leader_pid(cluster.job_name) == first_worker, timeout=TTL + MARGIN)
    run = wait_until(
        lambda: JobRun.objects.filter(job_name=SLOW, pid=first_worker).exclude(status="skipped").first(),
        timeout=MARGIN,
        message="the worker ran no slow job",
    )
    replaced = wait_until(
        lambda: (workers := server.workers()) and first_worker not in workers and workers,
        timeout=TIMEOUT + 3 * GRACE + 2 * MARGIN,
        message=f"worker {first_worker} did not leave:\n{server.output()[-3000:]}",
    )
    run.refresh_from_db()
    _assert_abandoned(run)
    assert server.running(), "the gunicorn master exited"
    assert server.request("GET", "/healthz").status == 200
    (new_worker,) = replaced
    wait_until(
        lambda: JobRun.objects.filter(job_name=SLOW, pid=new_worker).exclude(status="skipped").exists(),
        timeout=TTL + 2 * MARGIN,
        message="the new worker does not run the job again",
    )
    assert "leaving the process: run" in server.output()


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_the_runjobs_server_leaves_with_exit_1(cluster: Cluster) -> None:
    process = cluster.runjobs("p", env=_hung_env(cluster))
    run = wait_until(
        lambda: JobRun.objects.filter(job_name=SLOW, pid=process.pid).exclude(status="skipped").first(),
        timeout=15 + TTL,
        message="the runjobs server ran no slow job",
    )
    assert process.wait(timeout=TIMEOUT + 3 * GRACE + 2 * MARGIN) == 1, process.output()[-3000:]
    assert "job server left: run" in process.output()
    run.refresh_from_db()
    _assert_abandoned(run)

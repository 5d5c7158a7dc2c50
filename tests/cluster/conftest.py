"""Fixtures of the cluster tests: a cluster of child processes per test, and two instances of one.

Every process a test starts is killed (with its workers) in the finalizer,
before the test database is flushed; on failure the tail of every process's
output is printed.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from harness.cluster import MARGIN, PURGE, TTL
from harness.cluster.evidence import live_leader_pid
from harness.cluster.processes import Cluster, Gunicorn
from stayy.models import JobRun
from tests.cluster.support import MAIN_REDIS_URL, database_url
from tests.support import api_token, grant_staff_api, wait_until


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_failed] = report.failed
    return report


_failed = pytest.StashKey[bool]()


@pytest.fixture
def cluster(request: pytest.FixtureRequest, transactional_db: None, tmp_path: Path) -> Iterator[Cluster]:
    """Processes sharing one ``JOB_NAME`` of their own, so leases of tests never collide."""
    cluster = Cluster(
        tmp_path=tmp_path,
        job_name=f"cluster-{uuid.uuid4().hex[:12]}",
        exec_log=tmp_path / "exec.log",
        database_url=database_url(),
    )
    try:
        yield cluster
    finally:
        cluster.kill_all()
        if request.node.stash.get(_failed, True):
            sys.stderr.write(f"--- output of the processes of {request.node.name} ---\n{cluster.logs()}\n")


@dataclass
class TwoInstances:
    """Two gunicorn instances of one cluster, the leader's worker pid, the instance that does not
    lead, and an operator's API token."""

    a: Gunicorn
    b: Gunicorn
    leader: int
    follower: Gunicorn
    token: str


@pytest.fixture
def two_instances(cluster: Cluster) -> TwoInstances:
    """Two instances of 2 workers, jobs on (the purge job every second), once the purge job runs on the
    leader."""
    staff = grant_staff_api(
        get_user_model().objects.create_user(username="ops", password="ops-pass-123", is_staff=True)
    )
    env = cluster.env(redis_url=MAIN_REDIS_URL)
    a = cluster.gunicorn("a", env=env, workers=2)
    b = cluster.gunicorn("b", env=env, workers=2)
    a.wait_ready(workers=2)
    b.wait_ready(workers=2)
    leader = wait_until(
        lambda: live_leader_pid(cluster.job_name), timeout=TTL + MARGIN, message="nobody leads"
    )
    wait_until(
        lambda: JobRun.objects.filter(job_name=PURGE, status="succeeded", pid=leader).count() >= 2,
        timeout=MARGIN + 2,
        message="the purge job does not run",
    )
    follower = b if leader in a.workers() else a
    assert leader not in follower.workers()
    return TwoInstances(a=a, b=b, leader=leader, follower=follower, token=api_token(staff))

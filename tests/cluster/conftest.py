"""Fixtures of the cluster tests: a cluster of child processes per test.

Every process a test starts is killed (with its workers) in the finalizer,
before the test database is flushed; on failure the tail of every process's
output is printed.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster


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
        tmp_path=tmp_path, job_name=f"cluster-{uuid.uuid4().hex[:12]}", exec_log=tmp_path / "exec.log"
    )
    try:
        yield cluster
    finally:
        cluster.kill_all()
        if request.node.stash.get(_failed, True):
            sys.stderr.write(f"--- output of the processes of {request.node.name} ---\n{cluster.logs()}\n")

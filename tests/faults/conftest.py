"""Fixtures of the fault tests: one private PostgreSQL per session, a rig (database, Redis, cluster) per test.

The private PostgreSQL is initialised and its template database migrated
once; each test gets a fresh copy of the template and a Redis of its own, so
a test may stop, restart or hang them without touching the machine's shared
servers. On failure the tail of every process's output is printed.

``partitioned_rig`` adds a :mod:`~tests.faults.partition` network: its
instance namespace reaches the private PostgreSQL and Redis at the host's
address on that network, where both listen for the test.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from pytest_django.plugin import DjangoDbBlocker

from harness.faults.rig import Rig, close_rig, open_rig, prepare_template
from harness.faults.servers import PostgresServer, RedisServer
from tests.faults.partition import Partition, network_partition

_failed = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_failed] = report.failed
    return report


@pytest.fixture(scope="session")
def private_postgres(django_db_blocker: DjangoDbBlocker) -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.init()
        server.start()
        with django_db_blocker.unblock():
            prepare_template(server)
        yield server
    finally:
        server.destroy()


@contextlib.contextmanager
def _open(
    request: pytest.FixtureRequest,
    postgres: PostgresServer,
    django_db_blocker: DjangoDbBlocker,
    workdir: Path,
    redis: RedisServer | None = None,
) -> Iterator[Rig]:
    if not postgres.running():  # a failed test may have left it stopped
        postgres.start()
    with django_db_blocker.unblock():
        rig = open_rig(postgres, workdir=workdir, redis=redis)
        try:
            yield rig
        finally:
            close_rig(rig)
            if request.node.stash.get(_failed, True):
                logs = rig.cluster.logs() + postgres.log_tail()
                sys.stderr.write(f"--- output of the processes of {request.node.name} ---\n{logs}\n")


@pytest.fixture
def rig(
    request: pytest.FixtureRequest,
    private_postgres: PostgresServer,
    django_db_blocker: DjangoDbBlocker,
    tmp_path: Path,
) -> Iterator[Rig]:
    with _open(request, private_postgres, django_db_blocker, tmp_path) as rig:
        yield rig


@pytest.fixture
def partitioned_rig(
    request: pytest.FixtureRequest,
    private_postgres: PostgresServer,
    django_db_blocker: DjangoDbBlocker,
    tmp_path: Path,
) -> Iterator[tuple[Rig, Partition]]:
    """A rig whose servers the instance namespace of a :class:`Partition` reaches at its host address."""
    with network_partition() as net:
        if not private_postgres.running():
            private_postgres.start()
        with private_postgres.reachable_at(net.host_ip, clients=f"{net.instance_ip}/32"):
            redis = RedisServer(tmp_path / "redis.log", addresses=(net.host_ip,))
            redis.start()
            with _open(request, private_postgres, django_db_blocker, tmp_path, redis) as rig:
                yield rig, net

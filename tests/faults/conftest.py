"""Fixtures of the fault tests: one private PostgreSQL per session, a rig (database, Redis, cluster) per test.

The private PostgreSQL is initialised and its template database migrated
once; each test gets a fresh copy of the template and a Redis of its own, so
a test may stop, restart or hang them without touching the machine's shared
servers. On failure the tail of every process's output is printed.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from pytest_django.plugin import DjangoDbBlocker

from tests.faults.rig import Rig, close_rig, open_rig, prepare_template
from tests.faults.services import PostgresServer

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


@pytest.fixture
def rig(
    request: pytest.FixtureRequest,
    private_postgres: PostgresServer,
    django_db_blocker: DjangoDbBlocker,
    tmp_path: Path,
) -> Iterator[Rig]:
    if not private_postgres.running():  # a failed test may have left it stopped
        private_postgres.start()
    with django_db_blocker.unblock():
        rig = open_rig(private_postgres, workdir=tmp_path)
        try:
            yield rig
        finally:
            close_rig(rig)
            if request.node.stash.get(_failed, True):
                logs = rig.cluster.logs() + private_postgres.log_tail()
                sys.stderr.write(f"--- output of the processes of {request.node.name} ---\n{logs}\n")

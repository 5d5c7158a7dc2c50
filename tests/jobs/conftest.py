"""Fixtures of the job framework tests: throwaway jobs and a restored registry."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.db import connection

from stayy.conf import stayy_settings
from stayy.repository import catalog
from stayy.scheduling import registry
from stayy.scheduling.registry import JobSpec
from stayy.scheduling.server import JobServer
from stayy.scheduling.tracker import tracker
from tests.jobs.support import wait_until


def _noop(ctx: Any) -> dict[str, int]:
    return {"ok": 1}


@pytest.fixture
def restore_registry() -> Iterator[None]:
    """Leave the module-global registry as the app built it, whatever the test did."""
    yield
    registry.apply_overrides({})


@pytest.fixture
def make_job(restore_registry: None) -> Iterator[Callable[..., JobSpec]]:
    """Register a throwaway job (name ``tests.*``) for the test; it is removed afterwards."""
    names: list[str] = []

    def make(
        name: str, handler: Callable[..., Any] | None = None, *, sync: bool = True, **options: Any
    ) -> JobSpec:
        if "every" not in options and "cron" not in options:
            options["every"] = 60
        registry.job(name, **options)(handler or _noop)
        names.append(name)
        spec = registry.get(name)
        if sync:
            catalog.sync_from_specs([spec])
        return spec

    yield make
    for name in names:
        registry._declared.pop(name, None)
        registry._effective.pop(name, None)


@pytest.fixture
def overrides(restore_registry: None) -> Callable[[dict[str, Any]], None]:
    """Apply job overrides with every job the apps declare disabled (a job server in a test runs
    only ``tests.*`` jobs)."""

    def apply(extra: dict[str, Any]) -> None:
        disabled = {name: {"enabled": False} for name in registry._declared if not name.startswith("tests.")}
        registry.apply_overrides({**disabled, **extra})

    return apply


@pytest.fixture
def server_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_client() -> redis.Redis | None:
    url = stayy_settings.redis_url
    return redis.Redis.from_url(url) if url else None


@pytest.fixture(autouse=True)
def _no_leftover_runs() -> Iterator[None]:
    """Fail loudly if a test leaves a handler executing in this process (it would leak into the next)."""
    yield
    left = tracker.running()
    for ctx in left.values():
        ctx.cancel("test ended")
    assert not left or tracker.wait_idle(10), f"runs still executing after the test: {list(left)}"


@pytest.fixture(scope="session", autouse=True)
def _no_sessions_left_on_the_test_database(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Let the test database be dropped at the end: close what threads of the job runtime left open.

    Threads started by the runtime (ticks, watchdogs, heartbeats) end without closing their
    database connections; they close only when the garbage collector gets to them.
    """
    yield
    gc.collect()
    if connection.vendor != "postgresql":
        return
    if connection.settings_dict["NAME"] != connection.creation._get_test_db_name():
        return  # no test of this session used the database
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    connection.close()


@pytest.fixture
def start_server(server_name: str) -> Iterator[Callable[[], JobServer]]:
    """Start job servers in this process, each waited for until it leads; stopped afterwards."""
    servers: list[JobServer] = []

    def start() -> JobServer:
        server = JobServer(name=server_name)
        servers.append(server)
        server.start()
        wait_until(
            lambda: server.state == "leader",
            timeout=server.ttl + 5,
            message=f"job server never became leader ({server.state}, lease in {server.lease.backend})",
        )
        return server

    yield start
    for server in servers:
        if server.state != "stopped":
            server.stop(grace=5)

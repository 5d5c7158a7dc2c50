"""The cluster tests' side of :mod:`harness.cluster`: children use this test run's database and Redis."""

from __future__ import annotations

import os

from django.db import connection

from tests.support import child_database_url

MAIN_REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def database_url() -> str:
    """A ``DATABASE_URL`` pointing a child process at this test run's PostgreSQL database."""
    assert connection.vendor == "postgresql", "the cluster tests run on PostgreSQL (DATABASE_URL)"
    return child_database_url()

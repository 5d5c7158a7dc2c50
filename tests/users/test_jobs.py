"""The users jobs: declared in the registry and filling the stats cache."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stayy.scheduling import JobContext, registry
from users import jobs
from users.repository import cache as stats_cache

pytestmark = pytest.mark.django_db


def test_refresh_user_stats_is_declared_every_30_seconds_with_a_20_second_timeout():
    spec = registry.get("users.refresh_user_stats")

    assert spec.handler is jobs.refresh_user_stats
    assert spec.timeout == 20
    assert spec.schedule.key == "interval:30"


def test_refresh_user_stats_fills_the_cache_and_returns_a_summary(plain_user, make_user):
    make_user("gone", is_active=False)
    ctx = JobContext(
        job_name="users.refresh_user_stats",
        run_id=None,
        scheduled_for=datetime.now(UTC),
        trigger="command",
        timeout=20,
    )

    summary = jobs.refresh_user_stats(ctx)

    assert summary == {"total": 2, "active": 1, "inactive": 1}
    cached = stats_cache.stats_get()
    assert cached is not None
    assert cached["total"] == 2

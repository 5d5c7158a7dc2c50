"""Fixtures of the jobs dashboard tests: run rows, a leader row, users with and without permissions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone

from stayy.conf import stayy_settings
from stayy.models import JobRun, LeaderLease

# Registered by stayy/jobs.py and users/jobs.py.
PURGE = "stayy.purge_job_runs"
STATS = "users.refresh_user_stats"
SYNC = "users.sync_third_party_users"


@pytest.fixture
def make_run() -> Callable[..., JobRun]:
    """Insert a run row; ``ago`` places its scheduled time that many seconds back."""

    def make(
        *, ago: float = 60, job_name: str = PURGE, duration_ms: int | None = 1200, **fields: Any
    ) -> JobRun:
        scheduled_for = timezone.now() - timedelta(seconds=ago)
        values: dict[str, Any] = {
            "job_name": job_name,
            "scheduled_for": scheduled_for,
            "trigger": JobRun.Trigger.SCHEDULE,
            "status": JobRun.Status.SUCCEEDED,
            "started_at": scheduled_for,
            "finished_at": None
            if duration_ms is None
            else scheduled_for + timedelta(milliseconds=duration_ms),
            "duration_ms": duration_ms,
            "host": "web-1",
            "pid": 4242,
        }
        values.update(fields)
        return JobRun.objects.create(**values)

    return make


@pytest.fixture
def leader_row() -> Callable[..., LeaderLease]:
    def make(*, backend: str = "redis") -> LeaderLease:
        now = timezone.now()
        return LeaderLease.objects.create(
            name=stayy_settings.job_name,
            holder="token-1",
            host="jobs-host-7",
            pid=31337,
            backend=backend,
            since=now - timedelta(minutes=5),
            expires_at=now + timedelta(seconds=30),
        )

    return make


def staff_with(*codenames: str, username: str = "ops"):
    user = get_user_model().objects.create_user(username=username, password="ops-pass-123", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename, content_type__app_label="stayy"))
    return user


@pytest.fixture
def superuser_client(client):
    user = get_user_model().objects.create_superuser(
        username="root", email="root@example.com", password="root-pass-123"
    )
    client.force_login(user)
    return client


@pytest.fixture
def viewer_client(client):
    """Staff who may view jobs but not change them."""
    client.force_login(staff_with("view_job", username="viewer"))
    return client

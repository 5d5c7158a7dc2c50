"""Fixtures of the jobs API and admin tests: a registered job, run rows, a leader row, a superuser."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from stayy.conf import stayy_settings
from stayy.models import JobRun, LeaderLease

# Registered by stayy/jobs.py; its name has a dot, like every job name.
JOB = "stayy.purge_job_runs"


@pytest.fixture
def job_name() -> str:
    return JOB


@pytest.fixture
def make_run() -> Callable[..., JobRun]:
    """Insert a run row directly; ``ago`` places its scheduled time that many seconds back."""

    def make(*, ago: float = 60, job_name: str = JOB, **fields: Any) -> JobRun:
        scheduled_for: datetime = timezone.now() - timedelta(seconds=ago)
        values: dict[str, Any] = {
            "job_name": job_name,
            "scheduled_for": scheduled_for,
            "trigger": JobRun.Trigger.SCHEDULE,
            "status": JobRun.Status.SUCCEEDED,
            "started_at": scheduled_for,
            "finished_at": scheduled_for + timedelta(seconds=1.2),
            "duration_ms": 1200,
            "host": "web-1",
            "pid": 4242,
        }
        values.update(fields)
        return JobRun.objects.create(**values)

    return make


@pytest.fixture
def make_runs(make_run: Callable[..., JobRun]) -> Callable[[int], list[JobRun]]:
    """``n`` scheduled runs one minute apart, returned newest first."""

    def make(n: int) -> list[JobRun]:
        return [make_run(ago=60 * (i + 1)) for i in range(n)]

    return make


@pytest.fixture
def leader_row() -> Callable[..., LeaderLease]:
    def make(*, expires_in: float | None = 30) -> LeaderLease:
        now = timezone.now()
        return LeaderLease.objects.create(
            name=stayy_settings.job_name,
            holder="token-1",
            host="jobs-host",
            pid=777,
            backend="database",
            since=now - timedelta(minutes=5),
            expires_at=None if expires_in is None else now + timedelta(seconds=expires_in),
        )

    return make


@pytest.fixture
def superuser_client(client):
    superuser = get_user_model().objects.create_superuser(
        username="root", email="root@example.com", password="root-pass-123"
    )
    client.force_login(superuser)
    return client

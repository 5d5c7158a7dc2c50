"""The ``users.sync_third_party_users`` job handler: skipped without a URL, cancellable, reports progress."""

from __future__ import annotations

import pytest
from django.utils import timezone

from stayy.scheduling import JobCancelled, JobContext, JobSkipped, registry
from stayy.scheduling.triggers import IntervalSchedule
from tests.upstream.conftest import resize
from users.jobs import sync_third_party_users
from users.models import User

JOB = "users.sync_third_party_users"


def make_context() -> JobContext:
    return JobContext(job_name=JOB, run_id=None, scheduled_for=timezone.now(), trigger="test", timeout=600)


def test_the_job_is_registered_every_five_minutes_with_a_ten_minute_timeout():
    spec = registry.get(JOB)

    assert spec.handler is sync_third_party_users
    assert spec.timeout == 600
    assert spec.schedule == IntervalSchedule(seconds=300)


def test_without_a_url_the_job_is_skipped(settings):
    settings.THIRD_PARTY_USERS_URL = ""

    with pytest.raises(JobSkipped, match="THIRD_PARTY_USERS_URL is not set"):
        sync_third_party_users(make_context())


@pytest.mark.processes
@pytest.mark.django_db
def test_the_job_syncs_and_reports_progress(upstream_url):
    resize(upstream_url, 1200)
    ctx = make_context()

    result = sync_third_party_users(ctx)

    assert result is not None
    assert result["created"] == 1200 - 1200 // 50
    assert result["pages"] == 3  # the default page size is 500
    assert ctx.summary == result
    assert User.objects.filter(source=User.Source.THIRD_PARTY).count() == result["created"]


@pytest.mark.processes
@pytest.mark.django_db
def test_a_cancelled_run_stops_between_pages_and_is_recorded_as_cancelled(upstream_url):
    resize(upstream_url, 1200)
    ctx = make_context()
    original = ctx.report_progress

    def cancel_after_the_first_page(values=None, /, **counters):
        original(values, **counters)
        ctx.cancel("timeout")

    ctx.report_progress = cancel_after_the_first_page  # type: ignore[method-assign]

    with pytest.raises(JobCancelled, match="timeout"):
        sync_third_party_users(ctx)

    assert ctx.summary["pages"] == 1
    assert User.objects.filter(source=User.Source.THIRD_PARTY).count() == ctx.summary["created"] > 0

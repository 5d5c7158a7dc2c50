"""The dashboard's queries: 24 h success rate and p95 per job, and each job's newest runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from stayy import services
from stayy.models import JobRun
from stayy.repository import run_queries
from tests.admin_dashboard.conftest import PURGE, STATS, SYNC

DAY = timedelta(hours=24)


def make_history(make_run) -> None:
    """PURGE: 19 successes (100..1900 ms) and one 5 s failure in the last day, plus runs that do not count."""
    for i in range(19):
        make_run(ago=60 * (i + 1), duration_ms=100 * (i + 1))
    make_run(ago=30, status="failed", duration_ms=5000, error="boom")
    make_run(ago=25 * 3600, status="failed", duration_ms=99_000)  # older than a day
    make_run(ago=10, status="skipped", duration_ms=None, error="still running elsewhere")
    make_run(ago=11, status="missed", duration_ms=None, error="no leader")
    make_run(ago=5, status="running", duration_ms=None)
    make_run(ago=1, status="queued", duration_ms=None, trigger="manual", started_at=None)
    make_run(ago=40, job_name=SYNC, status="timed_out", duration_ms=600_000)


def catalog_rows() -> None:
    for name in (PURGE, STATS, SYNC):
        services.job_get(name=name)  # as the dashboard service makes sure of


def check_stats(make_run) -> None:
    catalog_rows()
    make_history(make_run)
    stats = run_queries.run_stats([PURGE, STATS, SYNC], since=timezone.now() - DAY)

    purge = stats[PURGE]
    assert (purge.finished, purge.succeeded) == (20, 19)
    assert purge.success_rate == pytest.approx(0.95)
    # Nearest rank: the 19th of 20 sorted durations is the shortest that 95 % do not exceed.
    assert purge.p95_duration_ms == 1900

    assert stats[SYNC].finished == 1 and stats[SYNC].success_rate == 0.0
    assert stats[SYNC].p95_duration_ms == 600_000
    assert stats[STATS].finished == 0
    assert stats[STATS].success_rate is None and stats[STATS].p95_duration_ms is None


def check_recent_runs(make_run) -> None:
    catalog_rows()
    runs = [make_run(ago=60 * (i + 1), duration_ms=i + 1) for i in range(60)]
    # A manual run at the very time of the 50th newest: the boundary is shared, still 50 come back.
    make_run(ago=60 * 50, trigger="manual")
    make_run(ago=1, status="queued", trigger="manual", duration_ms=None, started_at=None)
    few = [make_run(ago=60 * (i + 1), job_name=STATS) for i in range(3)]

    recent = run_queries.recent_runs([PURGE, STATS, SYNC], limit=50)

    assert len(recent[PURGE]) == 50
    assert "queued" not in {run.status for run in recent[PURGE]}
    times = [run.scheduled_for for run in recent[PURGE]]
    assert times == sorted(times, reverse=True)
    assert recent[PURGE][0].pk == runs[0].pk  # newest first
    assert {run.pk for run in recent[PURGE]} >= {run.pk for run in runs[:49]}
    assert [run.pk for run in recent[STATS]] == [run.pk for run in few]
    assert recent[SYNC] == []


@pytest.mark.django_db
def test_success_rate_and_p95_over_the_last_day(make_run):
    check_stats(make_run)


@pytest.mark.sqlite
@pytest.mark.django_db
def test_success_rate_and_p95_on_sqlite(make_run):
    check_stats(make_run)


@pytest.mark.django_db
def test_recent_runs_are_the_newest_fifty_per_job(make_run):
    check_recent_runs(make_run)


@pytest.mark.sqlite
@pytest.mark.django_db
def test_recent_runs_on_sqlite(make_run):
    check_recent_runs(make_run)


def dashboard_queries() -> int:
    with CaptureQueriesContext(connection) as ctx:
        dashboard = services.jobs_dashboard(chart_runs=50)
    assert len(dashboard.jobs) == 3
    return len(ctx.captured_queries)


@pytest.mark.django_db
def test_the_dashboard_service_needs_the_same_queries_for_any_history(make_run):
    dashboard_queries()  # the first look writes the catalog rows
    few = dashboard_queries()
    for name in (PURGE, STATS, SYNC):
        for i in range(120):
            make_run(ago=30 * (i + 1), job_name=name, status="failed" if i % 7 == 0 else "succeeded")
    assert dashboard_queries() == few
    # Catalog rows (one per job), the catalog with last runs, two for stats, two for charts, the leader.
    assert few <= 3 + 1 + 2 + 2 + 1


@pytest.mark.django_db
def test_the_dashboard_queries_read_the_run_history_through_indexes(make_run):
    """With weeks of history (three jobs, a run every 5 minutes), no query scans the run table."""
    assert connection.vendor == "postgresql", "the plans are checked in the PostgreSQL pass"
    catalog_rows()
    now = timezone.now()
    JobRun.objects.bulk_create(
        (
            JobRun(
                job_name=name,
                scheduled_for=now - timedelta(minutes=5 * i, seconds=offset),
                trigger="schedule",
                status="failed" if i % 11 == 0 else "succeeded",
                duration_ms=100 + i % 900,
            )
            for offset, name in enumerate((PURGE, STATS, SYNC))
            for i in range(8000)
        ),
        batch_size=4000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE stayy_jobrun")

    with CaptureQueriesContext(connection) as ctx:
        stats = run_queries.run_stats([PURGE, STATS, SYNC], since=now - DAY)
        recent = run_queries.recent_runs([PURGE, STATS, SYNC], limit=50)
    assert stats[PURGE].finished == 24 * 12 + 1  # both ends of the day included
    assert len(recent[SYNC]) == 50

    assert len(ctx.captured_queries) == 4
    for query in ctx.captured_queries:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + query["sql"])
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "stayy_jobrun" in plan
        assert "Seq Scan on stayy_jobrun" not in plan, plan
        assert "Index" in plan, plan

"""The claim of a scheduled tick (``stayy.repository.ticks``): one prepared statement on PostgreSQL
that reads the job's state and inserts the run row unless a run of the job still executes (a run of
a lost process too, until it is reaped)."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.forms.models import model_to_dict
from django.utils import timezone

from stayy.models import JobRun
from stayy.repository import runs, ticks
from tests.jobs.support import grid_tick
from tests.support import child_database_url

pytestmark = pytest.mark.django_db(transaction=True)

Status = JobRun.Status
BOTH = pytest.mark.parametrize(
    "database", [pytest.param("postgresql"), pytest.param("sqlite", marks=pytest.mark.sqlite)]
)
SAME_FIELDS = ["job_name", "trigger", "status", "active", "host", "pid", "requested_by", "error"]
SAME_FIELDS += ["traceback", "summary", "log", "finished_at", "duration_ms"]


def claim(job_name: str, tick) -> ticks.Claim:
    return ticks.claim_unless_executing(job_name=job_name, scheduled_for=tick)


@BOTH
def test_the_claimed_row_is_the_row_the_orm_writes(make_job, database):
    spec = make_job("tests.claimed_job", every=60)
    tick = grid_tick(60)
    by_orm = runs.claim_tick(job_name=spec.name, scheduled_for=tick - timedelta(minutes=1))
    orm_row = JobRun.objects.get(pk=by_orm.pk)
    JobRun.objects.filter(pk=by_orm.pk).update(active=False)  # it ended: the job's slot is free

    claimed = claim(spec.name, tick).run
    assert claimed is not None
    stored = JobRun.objects.get(pk=claimed.pk)
    assert model_to_dict(stored, fields=SAME_FIELDS) == model_to_dict(orm_row, fields=SAME_FIELDS)
    assert stored.scheduled_for == tick
    assert stored.started_at == stored.created_at == claimed.started_at
    # The heartbeat is on the database's clock, the same host and moment here.
    assert abs(stored.heartbeat_at - stored.started_at) < timedelta(seconds=2)
    assert stored.forced is False
    assert model_to_dict(claimed) == model_to_dict(stored)
    runs.finish(claimed, status=Status.SUCCEEDED, summary={"n": 1})
    stored.refresh_from_db()
    assert (stored.status, stored.active, stored.summary) == (Status.SUCCEEDED, False, {"n": 1})


@BOTH
def test_the_state_is_read_from_before_the_claim_and_an_executing_run_blocks_it(make_job, database):
    spec = make_job("tests.claimed_job", every=60)
    tick = grid_tick(60)
    first = claim(spec.name, tick - timedelta(minutes=1))
    assert first.run is not None
    assert first.state.last_tick is None
    assert first.state.schedule_since is not None
    assert first.state.executing is None

    blocked = claim(spec.name, tick)
    assert blocked.run is None
    assert blocked.state.last_tick == tick - timedelta(minutes=1)
    assert blocked.state.executing is not None
    assert blocked.state.executing.pk == first.run.pk
    assert not JobRun.objects.filter(job_name=spec.name, scheduled_for=tick).exists()

    # A run whose process stopped heartbeating still blocks it (the process may only be stopped)...
    JobRun.objects.filter(pk=first.run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=20))
    assert claim(spec.name, tick).state.executing.pk == first.run.pk
    # ... until the reaper closes it.
    assert runs.reap_lost(stale_after=15) == 1
    taken = claim(spec.name, tick)
    assert taken.run is not None and taken.state.executing is None
    runs.finish(taken.run, status=Status.SUCCEEDED, summary={})

    # The same tick again: nothing executes, and the row exists: not claimed, not skipped.
    again = claim(spec.name, tick)
    assert again.run is None and again.state.executing is None
    assert again.state.last_tick == tick
    assert JobRun.objects.filter(job_name=spec.name, scheduled_for=tick).count() == 1


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def prepared_claims() -> list[str]:
    return [statement for statement in prepared_statements() if "claimed AS" in statement]


def prepared_finishes() -> list[str]:
    return [statement for statement in prepared_statements() if statement.startswith('UPDATE "stayy_jobrun"')]


def test_the_claim_is_prepared_once_per_connection(make_job):
    spec = make_job("tests.claimed_job", every=1)
    tick = grid_tick(1)
    for step in range(3):
        assert claim(spec.name, tick - timedelta(seconds=step)).run is not None
        JobRun.objects.filter(job_name=spec.name).update(active=False)
    assert len(prepared_claims()) == 1


def test_a_runs_end_is_prepared_and_repeats_its_statement(make_job):
    spec = make_job("tests.claimed_job", every=1)
    tick = grid_tick(1)
    for step in range(3):
        run = claim(spec.name, tick - timedelta(seconds=step)).run
        assert run is not None
        runs.finish(run, status=Status.SUCCEEDED, summary={"step": step})
        assert JobRun.objects.get(pk=run.pk).summary == {"step": step}
    finishes = prepared_finishes()
    assert finishes and len(finishes) <= 2, finishes  # one per type of duration_ms (smallint, integer)


def test_with_prepared_statements_off_nothing_is_prepared(make_job, settings):
    """``DB_PREPARED_STATEMENTS=0`` (a pooler in transaction mode) leaves psycopg's threshold unset."""
    spec = make_job("tests.claimed_job", every=1)
    options = connection.settings_dict["OPTIONS"]
    saved = options.pop("prepare_threshold")
    connection.close()
    try:
        run = claim(spec.name, grid_tick(1)).run
        assert run is not None
        runs.finish(run, status=Status.SUCCEEDED, summary={})
        assert prepared_statements() == []
    finally:
        options["prepare_threshold"] = saved
        connection.close()


def test_a_connection_the_server_closed_is_replaced_and_the_tick_claimed(make_job):
    """The claim is its own health check: after a database restart the first tick still runs."""
    spec = make_job("tests.claimed_job", every=60)
    connection.ensure_connection()
    old_pid = connection.connection.info.backend_pid
    with psycopg.connect(child_database_url(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [old_pid])
    claimed = claim(spec.name, grid_tick(60))
    assert claimed.run is not None
    assert connection.connection.info.backend_pid != old_pid
    assert JobRun.objects.get(pk=claimed.run.pk).status == Status.RUNNING

"""The claim of a scheduled tick (``stayy.repository.runs.claim_tick``): the insert of its run row,
decided by the database's unique indexes (one row per tick; one executing run per job, a run of a
lost process included until it is reaped)."""

from __future__ import annotations

import os
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from stayy.models import JobRun
from stayy.repository import runs
from stayy.scheduling import runner
from tests.jobs.support import grid_tick
from tests.support import child_database_url

pytestmark = pytest.mark.django_db(transaction=True)

Status = JobRun.Status
BOTH = pytest.mark.parametrize(
    "database", [pytest.param("postgresql"), pytest.param("sqlite", marks=pytest.mark.sqlite)]
)


def claim(job_name: str, tick) -> JobRun | None:
    return runs.claim_tick(job_name=job_name, scheduled_for=tick)


@BOTH
def test_a_claimed_tick_is_a_running_row_of_this_process_heartbeating_on_the_database_clock(
    make_job, database
):
    spec = make_job("tests.claimed_job", every=60)
    tick = grid_tick(60)
    claimed = claim(spec.name, tick)
    assert claimed is not None
    stored = JobRun.objects.get(pk=claimed.pk)
    assert (stored.job_name, stored.scheduled_for, stored.trigger) == (spec.name, tick, "schedule")
    assert (stored.status, stored.active, stored.forced) == (Status.RUNNING, True, False)
    assert (stored.host, stored.pid) == (runs.HOST, os.getpid())
    assert stored.started_at == stored.created_at == claimed.started_at
    assert abs(stored.heartbeat_at - stored.started_at) < timedelta(seconds=2)  # one host here
    runs.finish(claimed, status=Status.SUCCEEDED, summary={"n": 1})
    stored.refresh_from_db()
    assert (stored.status, stored.active, stored.summary) == (Status.SUCCEEDED, False, {"n": 1})


@BOTH
def test_an_executing_run_blocks_the_claim_until_it_ends_or_is_reaped(make_job, database):
    spec = make_job("tests.claimed_job", every=60)
    tick = grid_tick(60)
    first = claim(spec.name, tick - timedelta(minutes=1))
    assert first is not None

    with pytest.raises(runs.JobExecuting) as refused:
        claim(spec.name, tick)
    assert refused.value.run.pk == first.pk
    assert not JobRun.objects.filter(job_name=spec.name, scheduled_for=tick).exists()

    # A run whose process stopped heartbeating still blocks it (the process may only be stopped)...
    JobRun.objects.filter(pk=first.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=20))
    with pytest.raises(runs.JobExecuting):
        claim(spec.name, tick)
    # ... until the reaper closes it.
    assert len(runs.reap_lost(stale_after=15)) == 1
    taken = claim(spec.name, tick)
    assert taken is not None
    runs.finish(taken, status=Status.SUCCEEDED, summary={})

    # The same tick again: its row exists (another leader's): not claimed, and nothing raised.
    assert claim(spec.name, tick) is None
    assert JobRun.objects.filter(job_name=spec.name, scheduled_for=tick).count() == 1


def test_a_connection_the_server_closed_is_replaced_and_the_tick_run(make_job):
    """Connections are checked around each run: after a database restart the first tick still runs."""
    spec = make_job("tests.claimed_job", every=60)
    connection.ensure_connection()
    old_pid = connection.connection.info.backend_pid
    with psycopg.connect(child_database_url(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [old_pid])
    runner.run_tick(spec, grid_tick(60), still_leader=lambda: True)
    (row,) = JobRun.objects.filter(job_name=spec.name)
    assert row.status == Status.SUCCEEDED
    assert connection.connection.info.backend_pid != old_pid

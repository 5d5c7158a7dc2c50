"""The claim of a scheduled tick: what the runner reads about a job, and the insert of its run row.

This is the path between a due tick and its ``started_at`` (what tick
lateness measures), and ten ticks due at the same instant share two cores
and one interpreter, so it is kept short: ``started_at`` is taken, then on
PostgreSQL the read and the claim are one prepared statement. Elsewhere
(SQLite in development) they are two. Either way the database's unique
indexes decide the claim: a run of the job that started executing after the
read makes the insert fail, and the claim reads the state again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from django.db import IntegrityError, connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from stayy.models import Job, JobRun
from stayy.repository import prepared, runs

Status = JobRun.Status


@dataclass(frozen=True)
class TickState:
    """What the runner reads about a job when it claims a tick."""

    #: When the job's current schedule began (ticks before it are not owed a run).
    schedule_since: datetime | None
    #: The newest scheduled tick of the job that had a row before this claim.
    last_tick: datetime | None
    #: A run of the job still executing (or of a lost process, until it is reaped): the tick is skipped.
    executing: JobRun | None


@dataclass(frozen=True)
class Claim:
    """The outcome of :func:`claim_unless_executing`."""

    state: TickState
    #: The ``running`` row of the tick, or ``None``: a run of the job still executes
    #: (``state.executing``), or another process has the tick.
    run: JobRun | None


def _tables() -> tuple[str, str, str]:
    quote = connection.ops.quote_name
    return quote(JobRun._meta.db_table), quote(Job._meta.db_table), quote("trigger")


def _state_select(*, claimed: str) -> str:
    """The SELECT of the state (and of the claimed id), over a CTE named ``executing``."""
    run_table, job_table, trigger = _tables()
    return f"""
        SELECT
            {claimed},
            (SELECT schedule_since FROM {job_table} WHERE name = %(job)s),
            (
                SELECT MAX(scheduled_for) FROM {run_table}
                WHERE job_name = %(job)s AND {trigger} = %(schedule)s
            ),
            executing.id, executing.status, executing.host, executing.pid
        FROM (SELECT 1 AS one) AS base
        LEFT JOIN executing ON 1 = 1
    """


def _executing_cte() -> str:
    run_table, _, _ = _tables()
    return f"""
        executing AS (
            SELECT id, status, host, pid FROM {run_table}
            WHERE job_name = %(job)s AND active = %(true)s AND forced = %(false)s
        )
    """


@cache
def _claim_sql() -> str:
    """Read the state and, unless a run executes, insert the tick's row (PostgreSQL)."""
    run_table, _, trigger = _tables()
    # Every column without a database default is listed (a test checks the row against
    # one inserted by the ORM).
    return f"""
        WITH {_executing_cte()},
        claimed AS (
            INSERT INTO {run_table} (
                job_name, scheduled_for, {trigger}, status, active, forced, created_at, started_at,
                heartbeat_at, finished_at, duration_ms, host, pid, requested_by, error, traceback,
                summary, log
            )
            SELECT
                %(job)s, %(tick)s, %(schedule)s, %(running)s, %(true)s, %(false)s, %(now)s, %(now)s,
                now(), NULL, NULL, %(host)s, %(pid)s, '', '', '', '{{}}'::jsonb, ''
            WHERE NOT EXISTS (SELECT 1 FROM executing)
            ON CONFLICT (job_name, scheduled_for) WHERE {trigger} = '{JobRun.Trigger.SCHEDULE.value}'
            DO NOTHING
            RETURNING id
        )
        {_state_select(claimed="(SELECT id FROM claimed)")}
    """


def _params(job_name: str) -> dict[str, Any]:
    return {
        "job": job_name,
        "schedule": JobRun.Trigger.SCHEDULE.value,
        "running": Status.RUNNING.value,
        "true": True,
        "false": False,
    }


def tick_state(*, job_name: str) -> TickState:
    """The :class:`TickState` of a job, in one statement, without claiming anything."""
    params = _params(job_name)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {_executing_cte()} {_state_select(claimed='NULL')}", params)
        row = cursor.fetchone()
    return _state(job_name, row[1:])


#: Claims of one tick: a run that ended between the read and the insert lets the next one in.
CLAIM_ATTEMPTS = 3


def claim_unless_executing(*, job_name: str, scheduled_for: datetime) -> Claim:
    """Read the job's :class:`TickState` and, unless a run of it still executes, insert the
    ``running`` row of the tick, ``started_at`` now.

    ``Claim.run`` is ``None`` when a run of the job executes (``state.executing``) or the tick
    already has a row. On PostgreSQL the read and the insert are one prepared statement;
    ``last_tick`` is read from before the insert.
    """
    for _ in range(CLAIM_ATTEMPTS):
        state, run = _claim_once(job_name, scheduled_for)
        if run is not None or state.executing is not None:
            return Claim(state=state, run=run)
        if runs.tick_has_row(job_name=job_name, scheduled_for=scheduled_for):
            return Claim(state=state, run=None)
    return Claim(state=state, run=None)


def _claim_once(job_name: str, scheduled_for: datetime) -> tuple[TickState, JobRun | None]:
    if connection.vendor != "postgresql":
        state = tick_state(job_name=job_name)
        if state.executing is not None:
            return state, None
        return state, runs.claim_tick(job_name=job_name, scheduled_for=scheduled_for)
    now = timezone.now()
    params = _params(job_name)
    params.update(tick=scheduled_for, now=now, host=runs.HOST, pid=os.getpid())
    try:
        row = _claim_row(params)
    except IntegrityError:  # another run of the job took its slot after the statement's read
        return tick_state(job_name=job_name), None
    state = _state(job_name, row[1:])
    if row[0] is None:
        return state, None
    # Read back through the ORM: the row as stored, heartbeat_at on the database's clock.
    return state, JobRun.objects.get(pk=row[0])


def _claim_row(params: dict[str, Any]) -> tuple[Any, ...]:
    """The claim statement's row, prepared (:mod:`stayy.repository.prepared`: planning it took
    most of its 1.4 ms, and ten at once waited for each other's on two cores)."""
    row = prepared.fetch_row(_claim_sql(), params)
    assert row is not None  # the statement selects one row
    return row


def _state(job_name: str, row: tuple[Any, ...]) -> TickState:
    schedule_since, last_tick, run_id, status, host, pid = row
    executing = None
    if run_id is not None:
        executing = JobRun(pk=run_id, job_name=job_name, status=status, host=host, pid=pid)
    return TickState(
        schedule_since=_read_datetime(schedule_since),
        last_tick=_read_datetime(last_tick),
        executing=executing,
    )


def _read_datetime(value: datetime | str | None) -> datetime | None:
    """A datetime read with plain SQL: PostgreSQL returns it aware; SQLite naive in UTC, or as
    text where the column type is lost (``MAX()``)."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else parse_datetime(value)
    if parsed is None:
        raise ValueError(f"not a datetime: {value!r}")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)

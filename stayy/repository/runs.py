"""Run history queries. The run row is the claim of a run, so claims happen here.

Every claim is one insert or update that the database's unique indexes
decide (one row per tick; one executing run per job), so "is one executing?"
and "claim it" are one step for every kind of run. Heartbeats and stale
cut-offs use the database's clock (``now()``), never the host's, and every
write of a run's end first checks that the row is still its own (``active``):
a run closed by someone else meanwhile is never overwritten.
"""

from __future__ import annotations

import os
import socket
import traceback as traceback_module
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.db import IntegrityError, connection, models, transaction
from django.db.models import Max, Q, Value
from django.db.models.functions import Concat, Now

from stayy.models import Job, JobRun
from stayy.repository.clock import cluster_clock

HOST = socket.gethostname()
ERROR_MAX_CHARS = 2000
TRACEBACK_MAX_CHARS = 20000

Status = JobRun.Status


def _refusable() -> AbstractContextManager[object]:
    """Around a write that a unique index may refuse: a savepoint inside a transaction, so that a
    refusal leaves the transaction usable; nothing in autocommit, where it leaves nothing to undo."""
    return transaction.atomic() if connection.in_atomic_block else nullcontext()


def _where() -> dict[str, Any]:
    return {"host": HOST, "pid": os.getpid()}


class JobExecuting(Exception):
    """A claim was refused: another run of the job holds its execution slot (``run``, if still there)."""

    def __init__(self, run: JobRun | None) -> None:
        super().__init__(describe_executing(run))
        self.run = run


def describe_executing(run: JobRun | None) -> str:
    if run is None:
        return "another run of the job was executing"
    return f"run {run.pk} on {run.host} pid {run.pid}"


def stale_before(seconds: float) -> Any:
    """The database's ``now()`` minus ``seconds``: heartbeats older than this are stale."""
    return Now() - timedelta(seconds=seconds)


def running_run(
    *,
    job_name: str,
    scheduled_for: datetime,
    trigger: str,
    requested_by: str = "",
    now: datetime | None = None,
) -> JobRun:
    """The unsaved row of a run that starts ``now`` (default: now) in this process, ``running``.

    Its first heartbeat is the database's ``now()`` when it is saved (read the row to see it).
    """
    now = now or cluster_clock.now()
    return JobRun(
        job_name=job_name,
        scheduled_for=scheduled_for,
        trigger=trigger,
        status=Status.RUNNING,
        active=True,
        created_at=now,
        started_at=now,
        heartbeat_at=Now(),
        requested_by=requested_by,
        **_where(),
    )


#: Tries of one claim: a run that ended between a refused insert and the look at why lets it in.
CLAIM_ATTEMPTS = 3


def claim_tick(*, job_name: str, scheduled_for: datetime) -> JobRun | None:
    """Insert the ``running`` row of a scheduled tick, ``started_at`` now.

    ``None`` if the tick already has a row (another leader's); raises :class:`JobExecuting` if
    another run of the job holds its slot.
    """
    for _ in range(CLAIM_ATTEMPTS):
        run = running_run(job_name=job_name, scheduled_for=scheduled_for, trigger=JobRun.Trigger.SCHEDULE)
        try:
            with _refusable():
                run.save(force_insert=True)
        except IntegrityError:
            if tick_has_row(job_name=job_name, scheduled_for=scheduled_for):
                return None
            other = executing_run(job_name=job_name)
            if other is not None:
                raise JobExecuting(other) from None
            continue
        return run
    raise JobExecuting(None)


def tick_has_row(*, job_name: str, scheduled_for: datetime) -> bool:
    return JobRun.objects.filter(
        job_name=job_name, scheduled_for=scheduled_for, trigger=JobRun.Trigger.SCHEDULE
    ).exists()


def _insert_tick_row(*, job_name: str, scheduled_for: datetime, **fields: Any) -> bool:
    """Insert a row of a tick that does not run now; ``False`` if a unique index refused it."""
    try:
        with _refusable():
            JobRun.objects.create(
                job_name=job_name, scheduled_for=scheduled_for, trigger=JobRun.Trigger.SCHEDULE, **fields
            )
    except IntegrityError:
        return False
    return True


def record_tick(*, job_name: str, scheduled_for: datetime, status: str, reason: str) -> bool:
    """Record a tick that does not run (``skipped``/``missed``); ``False`` if it already has a row."""
    now = cluster_clock.now()
    return _insert_tick_row(
        job_name=job_name,
        scheduled_for=scheduled_for,
        status=status,
        created_at=now,
        finished_at=now,
        error=reason,
        **_where(),
    )


def record_missed_ticks(*, job_name: str, ticks: Iterable[datetime], reason: str) -> int:
    """Record several missed ticks at once, leaving alone those that already have a row."""
    now = cluster_clock.now()
    rows = [
        JobRun(
            job_name=job_name,
            scheduled_for=tick,
            trigger=JobRun.Trigger.SCHEDULE,
            status=Status.MISSED,
            created_at=now,
            finished_at=now,
            error=reason,
            **_where(),
        )
        for tick in ticks
    ]
    if not rows:
        return 0
    before = JobRun.objects.filter(
        job_name=job_name, scheduled_for__in=[r.scheduled_for for r in rows]
    ).count()
    JobRun.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    after = JobRun.objects.filter(
        job_name=job_name, scheduled_for__in=[r.scheduled_for for r in rows]
    ).count()
    return after - before


def create_started(*, job_name: str, trigger: str, requested_by: str = "", forced: bool = False) -> JobRun:
    """A run that is not a scheduled tick (``runjobs --run``), started now in this process.

    Raises :class:`JobExecuting` if another run of the job executes, unless ``forced`` (then the
    run does not hold the job's slot).
    """
    run = running_run(
        job_name=job_name, scheduled_for=cluster_clock.now(), trigger=trigger, requested_by=requested_by
    )
    run.forced = forced
    try:
        with _refusable():
            run.save(force_insert=True)
    except IntegrityError:
        raise JobExecuting(executing_run(job_name=job_name)) from None
    return run


def create_queued(*, job_name: str, requested_by: str) -> JobRun:
    """A manual run request; the leader claims and executes it."""
    now = cluster_clock.now()
    return JobRun.objects.create(
        job_name=job_name,
        scheduled_for=now,
        trigger=JobRun.Trigger.MANUAL,
        status=Status.QUEUED,
        created_at=now,
        requested_by=requested_by,
    )


def queue_tick(*, job_name: str, scheduled_for: datetime) -> bool:
    """Record a tick that waits for the job's executing run (overlap "queue"); ``False`` if one
    tick of the job already waits, or this tick already has a row."""
    return _insert_tick_row(
        job_name=job_name, scheduled_for=scheduled_for, status=Status.QUEUED, created_at=cluster_clock.now()
    )


def queued_tick(*, job_name: str) -> JobRun | None:
    return JobRun.objects.filter(
        job_name=job_name, status=Status.QUEUED, trigger=JobRun.Trigger.SCHEDULE
    ).first()


def queue_retry(run: JobRun, *, not_before: datetime) -> JobRun | None:
    """Queue the next attempt of ``run`` (a failed, timed-out or lost one), to start at ``not_before``
    or later; ``None`` if it already has one."""
    try:
        with _refusable():
            return JobRun.objects.create(
                job_name=run.job_name,
                scheduled_for=run.scheduled_for,
                trigger=JobRun.Trigger.RETRY,
                status=Status.QUEUED,
                created_at=cluster_clock.now(),
                attempt=run.attempt + 1,
                retry_of=run,
                not_before=not_before,
            )
    except IntegrityError:
        return None


def queued_runs(*, limit: int = 20) -> list[JobRun]:
    """Queued runs that may start now (run-now requests, waiting ticks, retries whose time came)."""
    due = Q(not_before__isnull=True) | Q(not_before__lte=cluster_clock.now())
    return list(JobRun.objects.filter(due, status=Status.QUEUED).order_by("created_at")[:limit])


def claim_queued(run_id: int, *, job_name: str) -> bool:
    """Move a queued run to ``running`` in this process; ``False`` if another process took it.

    Raises :class:`JobExecuting` if another run of the job executes (the request stays queued).
    """
    try:
        with _refusable():
            return bool(
                JobRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
                    status=Status.RUNNING,
                    active=True,
                    started_at=cluster_clock.now(),
                    heartbeat_at=Now(),
                    **_where(),
                )
            )
    except IntegrityError:
        raise JobExecuting(executing_run(job_name=job_name)) from None


def close_queued(run_id: int, *, status: str, reason: str) -> None:
    JobRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
        status=status, finished_at=cluster_clock.now(), error=reason, **_where()
    )


def get_run(run_id: int) -> JobRun | None:
    return JobRun.objects.filter(pk=run_id).first()


def executing_run(*, job_name: str) -> JobRun | None:
    """The run holding the job's execution slot, if any (a run of a lost process holds it until
    :func:`reap_lost` closes it)."""
    return JobRun.objects.filter(job_name=job_name, active=True, forced=False).first()


def last_scheduled_tick(*, job_name: str) -> datetime | None:
    value = JobRun.objects.filter(job_name=job_name, trigger=JobRun.Trigger.SCHEDULE).aggregate(
        last=Max("scheduled_for")
    )["last"]
    return value


def heartbeat(run_ids: Iterable[int]) -> set[int]:
    """Refresh the heartbeat of runs this process executes; returns those whose row is still
    theirs (``active``). A run missing from the answer was closed by someone else."""
    ids = list(run_ids)
    if not ids:
        return set()
    JobRun.objects.filter(pk__in=ids, active=True).update(heartbeat_at=Now())
    return set(JobRun.objects.filter(pk__in=ids, active=True).values_list("pk", flat=True))


def save_summary(run_id: int, summary: dict[str, Any]) -> bool:
    """Store a running run's progress; ``False`` if its row is no longer its own."""
    return bool(JobRun.objects.filter(pk=run_id, active=True).update(summary=summary, heartbeat_at=Now()))


def _finished_fields(run: JobRun, now: datetime) -> dict[str, Any]:
    started = run.started_at or now
    return {"finished_at": now, "duration_ms": max(0, int((now - started).total_seconds() * 1000))}


@dataclass(frozen=True)
class Ended:
    """What :func:`finish` did: ``own`` if the row was still the run's own (and is now closed),
    ``job_alerting`` if the run's job was failing or overdue then (a success is a recovery)."""

    own: bool
    job_alerting: bool = False


def finish(
    run: JobRun,
    *,
    status: str,
    summary: dict[str, Any],
    error: str = "",
    exc: BaseException | None = None,
    log: str = "",
) -> Ended:
    """Close a run whose handler returned. A row that is no longer the run's own (closed by a
    reaper or at shutdown) is left as it is (see :func:`note_late_end`). A run already closed as
    timed out keeps its status (and gets the summary and the log the handler wrote until it
    returned). The same statement reads whether the run's job is failing or overdue.

    One plain ``UPDATE`` (every run of every job ends here; benchmark 4b in bench/README.md
    weighs it against the ORM's). Every ``CASE`` reads the row as it was before the
    ``UPDATE``, so ``status`` is compared before it changes.
    """
    now = cluster_clock.now()
    values = {
        "status": status,
        "error": error[:ERROR_MAX_CHARS],
        "traceback": format_traceback(exc),
        **_finished_fields(run, now),
    }
    params = {f"new_{name}": _db_value(name, value) for name, value in values.items()}
    params.update(
        running=Status.RUNNING.value,
        active=False,
        summary=_db_value("summary", summary),
        log=log,
        id=run.pk,
    )
    with connection.cursor() as cursor:
        cursor.execute(_finish_sql(tuple(values)), params)
        row = cursor.fetchone()
    return Ended(own=row is not None, job_alerting=row is not None and bool(row[0]))


def note_late_end(run_id: int, note: str) -> None:
    """Add to the error of a run closed by someone else what its handler did when it returned."""
    JobRun.objects.filter(pk=run_id, active=False).update(
        error=Concat("error", Value(f"\n{note}"[: ERROR_MAX_CHARS // 2]))
    )


@cache
def _finish_sql(closing: tuple[str, ...]) -> str:
    """``UPDATE`` of a run's end: the ``closing`` columns only while the row is still running."""
    quote = connection.ops.quote_name
    status = quote("status")
    assignments = [
        f"{quote(name)} = CASE WHEN {status} = %(running)s THEN %(new_{name})s ELSE {quote(name)} END"
        for name in closing
    ]
    assignments += [f"{quote(name)} = %({name})s" for name in ("active", "summary", "log")]
    runs, jobs = quote(JobRun._meta.db_table), quote(Job._meta.db_table)
    job_alerting = (
        f"SELECT {quote('alerting_since')} IS NOT NULL OR {quote('overdue_alerted_at')} IS NOT NULL "
        f"FROM {jobs} WHERE {jobs}.{quote('name')} = {runs}.{quote('job_name')}"
    )
    return (
        f"UPDATE {runs} SET {', '.join(assignments)} "
        f"WHERE {quote('id')} = %(id)s AND {quote('active')} RETURNING ({job_alerting})"
    )


def _db_value(field_name: str, value: Any) -> Any:
    """``value`` as the ORM would send it for that column (JSON, datetimes on SQLite)."""
    field = JobRun._meta.get_field(field_name)
    assert isinstance(field, models.Field)  # a column of the run table
    return field.get_db_prep_save(value, connection)


def mark_timed_out(run: JobRun, *, timeout: float, log: str = "") -> bool:
    """Record a run past its deadline as ``timed_out`` now, with its log so far; its handler may
    still be executing."""
    now = cluster_clock.now()
    return bool(
        JobRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
            status=Status.TIMED_OUT,
            error=f"timed out after {timeout:g} s; cancellation requested",
            log=log,
            **_finished_fields(run, now),
        )
    )


def abandon(run_ids: Iterable[int], *, reason: str) -> int:
    """Close runs this process gives up on at shutdown."""
    now = cluster_clock.now()
    ids = list(run_ids)
    closed = 0
    for run in JobRun.objects.filter(pk__in=ids, status=Status.RUNNING):
        closed += JobRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
            status=Status.FAILED, error=reason, active=False, **_finished_fields(run, now)
        )
    JobRun.objects.filter(pk__in=ids).update(active=False)
    return closed


def abandon_timed_out(run_id: int, *, note: str) -> bool:
    """Give up on a timed-out run whose handler never returned (its process leaves): it stays
    ``timed_out``, with ``note`` added to its error, and no longer holds the job."""
    closed = JobRun.objects.filter(pk=run_id, active=True).update(
        status=Status.TIMED_OUT, active=False, error=Concat("error", Value(f"\n{note}"))
    )
    return bool(closed)


def reap_lost(*, stale_after: float, keep: Iterable[int] = ()) -> list[JobRun]:
    """Close runs whose process stopped heartbeating ``stale_after`` s ago (by the database's
    clock) as failed ("process lost"), except the runs in ``keep`` (this process executes them).
    Returns the runs closed (a timed-out run only gives up the job's slot: it is not returned)."""
    now = cluster_clock.now()
    stale = Q(heartbeat_at__lt=stale_before(stale_after)) | Q(heartbeat_at__isnull=True)
    lost = JobRun.objects.filter(stale, active=True).exclude(pk__in=list(keep))
    closed = []
    for run in lost:
        reason = f"process lost: {run.host}:{run.pid} stopped heartbeating"
        # The same condition again: a heartbeat since the SELECT keeps the run alive.
        still_lost = JobRun.objects.filter(stale, pk=run.pk, active=True)
        if run.status == Status.RUNNING:
            if still_lost.filter(status=Status.RUNNING).update(
                status=Status.FAILED, error=reason, active=False, **_finished_fields(run, now)
            ):
                closed.append(run)
        else:
            still_lost.update(active=False)
    return closed


def purge_batch(cutoff: datetime, *, batch_size: int = 5000) -> int:
    """Delete up to ``batch_size`` finished runs scheduled before ``cutoff``; returns how many."""
    ids = list(
        JobRun.objects.filter(scheduled_for__lt=cutoff, active=False)
        .exclude(status__in=[Status.RUNNING, Status.QUEUED])
        .order_by()
        .values_list("pk", flat=True)[:batch_size]
    )
    if not ids:
        return 0
    return JobRun.objects.filter(pk__in=ids).delete()[0]


def format_traceback(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    text = "".join(traceback_module.format_exception(exc))
    return text[-TRACEBACK_MAX_CHARS:]

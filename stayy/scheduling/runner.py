"""Executing runs: the single entry point through which every run of every job goes.

Scheduled ticks arrive here from the leader's timer with their scheduled
time and the older ticks it passed (recorded missed). A tick is claimed by
inserting its run row: the database's unique indexes (one row per tick, one
executing run per job, a run of a lost process included until the leader's
loop closes it) decide between concurrent claims, and a tick refused for an
executing run is recorded as skipped, with the reason. :func:`owed_ticks` is
the catch-up of a new leader. Whatever a run logs in its thread is captured
(:class:`~stayy.observability.logcontext.RunLog`) and stored with the run's
outcome, and with its timeout.

A run's end is written only while its row is still its own; a run closed by
someone else meanwhile (its process was stopped past the stale window) keeps
that record, with a note of what the handler did when it came back. A
handler that returns after its run was cancelled is recorded failed (or timed
out), never succeeded.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, close_old_connections, connections, transaction
from django_apscheduler.util import close_old_connections as db_connections_checked

from stayy.conf import stayy_settings
from stayy.models import JobRun
from stayy.observability import metrics
from stayy.observability.logcontext import RunLog, bind_run
from stayy.repository import catalog, runs
from stayy.repository.clock import cluster_clock
from stayy.scheduling import alerts, registry
from stayy.scheduling.context import JobCancelled, JobContext, JobSkipped
from stayy.scheduling.deadlines import deadlines
from stayy.scheduling.registry import JobSpec
from stayy.scheduling.tracker import tracker
from stayy.scheduling.triggers import fire_times

logger = logging.getLogger("stayy.jobs")

Status = JobRun.Status
#: At most this many missed ticks of one job are written in one catch-up.
MAX_MISSED_ROWS = 10_000
PROGRESS_SAVE_INTERVAL = 1.0
FINISH_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)


def overlap_reason(other: JobRun | None) -> str:
    if other is None:
        return "previous run still running"
    if other.status == Status.TIMED_OUT:
        return f"previous run timed out and has not returned (run {other.pk} on {other.host}:{other.pid})"
    return f"previous run still running (run {other.pk} on {other.host}:{other.pid})"


def owed_ticks(spec: JobSpec, *, now: datetime) -> list[datetime]:
    """The ticks of ``spec`` up to ``now`` that have no row yet and are still owed, oldest first.

    Owed are the fire times after the job's newest recorded tick, after its schedule began
    (first scheduled, resumed or re-timed) and within ``JOB_CATCHUP_WINDOW``. A new leader runs the
    newest and records the others missed (:func:`run_tick`); this is all the catch-up there is.
    """
    floor = now - timedelta(seconds=stayy_settings.catchup_window)
    last_tick = runs.last_scheduled_tick(job_name=spec.name)
    schedule_since = catalog.schedule_since(spec.name)
    after = max(t for t in (last_tick, schedule_since, floor) if t is not None)
    return fire_times(spec.schedule, after=after, until=now, limit=MAX_MISSED_ROWS)


# Connections are checked before and after each run, as Django does per request.
@db_connections_checked
def run_tick(
    spec: JobSpec,
    scheduled_for: datetime,
    *,
    still_leader: Callable[[], bool],
    missed_before: Sequence[datetime] = (),
    on_started: Callable[[], None] | None = None,
) -> None:
    """Record the ``missed_before`` ticks of ``spec`` as missed and run ``scheduled_for`` at most once.

    Lateness is judged by the cluster's clock (:data:`~stayy.repository.clock.cluster_clock`).
    """
    try:
        if not still_leader():  # checked last before the first write, on each path
            return
        if missed_before:
            _record_missed(spec, missed_before, next_tick=scheduled_for)
        late = (cluster_clock.now() - scheduled_for - spec.jitter_delay(scheduled_for)).total_seconds()
        if late > spec.misfire_grace:
            if runs.record_tick(
                job_name=spec.name,
                scheduled_for=scheduled_for,
                status=Status.MISSED,
                reason=f"started {late:.1f} s late, past the misfire grace of {spec.misfire_grace:g} s",
            ):
                metrics.observe_ticks_not_run(spec.name, Status.MISSED)
            return
        if spec.overlap == "queue" and runs.queued_tick(job_name=spec.name) is not None:
            _skip_or_queue(spec, scheduled_for, executing=None)  # the waiting tick goes first
            return
        try:
            run = runs.claim_tick(job_name=spec.name, scheduled_for=scheduled_for)
        except runs.JobExecuting as busy:
            _skip_or_queue(spec, scheduled_for, executing=busy.run)
            return
        if run is None:
            logger.debug("tick %s of %s already claimed elsewhere", scheduled_for, spec.name)
            return
        execute(spec, run, on_started=on_started)
    except DatabaseError as exc:
        logger.error("tick %s of %s not run: database error: %s", scheduled_for.isoformat(), spec.name, exc)


def _skip_or_queue(spec: JobSpec, scheduled_for: datetime, *, executing: JobRun | None) -> None:
    """A tick that found the job executing: it waits (overlap "queue", one at most) or is skipped."""
    if spec.overlap == "queue":
        if runs.queue_tick(job_name=spec.name, scheduled_for=scheduled_for):
            logger.info(
                "%s: tick %s queued behind %s",
                spec.name,
                scheduled_for.isoformat(),
                overlap_reason(executing),
            )
            return
        waiting = runs.queued_tick(job_name=spec.name)
        reason = (
            f"a tick already waits for the running one (run {waiting.pk})"
            if waiting
            else overlap_reason(executing)
        )
    else:
        reason = overlap_reason(executing)
    if runs.record_tick(
        job_name=spec.name, scheduled_for=scheduled_for, status=Status.SKIPPED, reason=reason
    ):
        metrics.observe_ticks_not_run(spec.name, Status.SKIPPED)


def _record_missed(spec: JobSpec, missed: Sequence[datetime], *, next_tick: datetime) -> None:
    count = runs.record_missed_ticks(
        job_name=spec.name,
        ticks=missed,
        reason=f"no scheduler ran this tick (leader change or delay); next tick run at {next_tick:%H:%M:%S}",
    )
    if count:
        metrics.observe_ticks_not_run(spec.name, Status.MISSED, count)
        logger.warning("%s: recorded %d missed tick(s) before %s", spec.name, count, next_tick.isoformat())


@db_connections_checked
def run_manual(spec: JobSpec, run_id: int) -> None:
    """Execute a queued manual run that this process has claimed."""
    try:
        run = runs.get_run(run_id)
        if run is not None:
            execute(spec, run)
    except DatabaseError as exc:
        logger.error("manual run %s of %s failed to start: %s", run_id, spec.name, exc)


def _record_outcome(
    ctx: JobContext, run: JobRun, *, status: str, error: str, exc: BaseException | None, log: str
) -> runs.Ended:
    """Store how a run ended, retrying through a short database outage; not ``own`` if the row was
    no longer the run's own (or could not be written).

    The first attempt uses the connection as the run left it: the claim used
    it just before the handler, and checking it first (Django's health check)
    would cost every tick a round trip. A failed attempt marks the connection,
    and each retry starts by replacing a connection that failed. The run stays
    registered (and heartbeating) meanwhile, so it is not mistaken for the run
    of a lost process.
    """
    summary = json_safe(ctx.summary)
    for delay in FINISH_RETRY_DELAYS:
        try:
            ended = runs.finish(run, status=status, summary=summary, error=error, exc=exc, log=log)
            if not ended.own:
                _note_late_end(ctx, run, status=status, error=error, summary=summary)
            return ended
        except DatabaseError as db_error:
            ctx.logger.warning("outcome %s not recorded yet (%s); retrying in %g s", status, db_error, delay)
            time.sleep(delay)
            close_old_connections()
    ctx.logger.error("outcome %s of run %s not recorded: the database stayed unreachable", status, run.pk)
    return runs.Ended(own=False)


def _note_late_end(ctx: JobContext, run: JobRun, *, status: str, error: str, summary: dict[str, Any]) -> None:
    """The run's row was closed by someone else: keep that record, add what the handler did."""
    outcome = f"{status}: {error}" if error else status
    returned = f"{cluster_clock.now():%H:%M:%S}"
    note = f"its process resumed; the handler returned {returned} ({outcome})"
    note += f"; summary then: {json.dumps(summary)}"
    runs.note_late_end(run.pk, note[:1000])
    ctx.logger.warning("run %s was closed by another process before it returned; its record is kept", run.pk)


class _SummaryEncoder(DjangoJSONEncoder):
    def default(self, o: Any) -> Any:
        try:
            return super().default(o)
        except TypeError:
            return repr(o)


def json_safe(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary as JSON can store it: dates, decimals, UUIDs as text; anything else as its repr."""
    return json.loads(json.dumps(summary, cls=_SummaryEncoder))


class _ProgressSaver:
    """Stores the summary a handler reports, at most once a second.

    Not for an atomic run: from inside its transaction the write would lock the run's row (and
    hold up its heartbeats) until the end; its summary is stored with its end.
    """

    def __init__(self, run_id: int, echo: Callable[[dict[str, Any]], None] | None, *, store: bool) -> None:
        self.run_id, self.echo, self.store = run_id, echo, store
        self.last_saved = 0.0
        self.ctx: JobContext | None = None

    def __call__(self, summary: dict[str, Any]) -> None:
        if self.echo is not None:
            self.echo(summary)
        if not self.store:
            return
        now = time.monotonic()
        if now - self.last_saved >= PROGRESS_SAVE_INTERVAL:
            self.last_saved = now
            try:
                if not runs.save_summary(self.run_id, json_safe(summary)) and self.ctx is not None:
                    self.ctx.lose("its run row was closed by another process")
            except DatabaseError as exc:
                logger.warning("progress of run %s not saved: %s", self.run_id, exc)


@dataclass(frozen=True)
class _Outcome:
    status: str
    error: str = ""
    exc: BaseException | None = None
    #: The run's end, if already stored (an atomic run's, with its writes).
    ended: runs.Ended | None = None


def _call(spec: JobSpec, ctx: JobContext) -> _Outcome:
    """Call the handler; what it did, as a run's status."""
    try:
        result = spec.handler(ctx)
        if result:
            ctx.summary.update(result)
    except JobSkipped as exc:
        return _Outcome(Status.SKIPPED, str(exc))
    except JobCancelled as exc:
        return _Outcome(Status.FAILED, f"cancelled: {exc}")
    except Exception as exc:
        return _Outcome(Status.FAILED, f"{type(exc).__name__}: {exc}", exc)
    if ctx.cancel_seen:  # it stopped when told to and returned: its work is not done
        return _Outcome(Status.FAILED, f"cancelled: {ctx.cancel_reason}")
    return _Outcome(Status.SUCCEEDED)


class _RollBack(Exception):
    def __init__(self, outcome: _Outcome) -> None:
        self.outcome = outcome


def _call_atomically(
    spec: JobSpec, ctx: JobContext, run: JobRun, *, timed_out: threading.Event, run_log: RunLog
) -> _Outcome:
    """Call the handler in a transaction that also stores the run's end: both commit, or neither.

    Only a run that succeeded in time and still owns its row commits; any other outcome rolls
    the handler's writes back, so a retry of the tick starts from a clean slate.
    """
    try:
        with transaction.atomic():
            outcome = _call(spec, ctx)
            if outcome.status != Status.SUCCEEDED or timed_out.is_set():
                raise _RollBack(outcome)
            summary = json_safe(ctx.summary)
            ended = runs.finish(run, status=Status.SUCCEEDED, summary=summary, log=run_log.text())
            if not ended.own:
                raise _RollBack(_Outcome(Status.FAILED, "lost: its run row was closed by another process"))
    except _RollBack as undo:
        ctx.logger.info("the run's writes were rolled back")
        return undo.outcome
    except DatabaseError as exc:  # the commit failed (the server ended the session, say)
        return _Outcome(Status.FAILED, f"{type(exc).__name__}: {exc}", exc)
    return _Outcome(Status.SUCCEEDED, ended=ended)


#: Outcomes a job's ``retries`` apply to (a lost run is failed).
RETRIED = (Status.FAILED, Status.TIMED_OUT)


def retry_later(run_id: int) -> None:
    """Queue the next attempt of a run that failed, timed out or was lost, if its job retries."""
    run = runs.get_run(run_id)
    if run is None or run.status not in RETRIED:
        return
    try:
        spec = registry.edited(registry.get(run.job_name), catalog.edits_of(run.job_name))
    except registry.UnknownJob:
        return
    attempt = run.attempt + 1
    if attempt > spec.retries:
        return
    delay = spec.retry_delay(attempt) * random.uniform(1.0, 1.2)  # spread, so retries do not bunch
    retry = runs.queue_retry(run, not_before=cluster_clock.now() + timedelta(seconds=delay))
    if retry is not None:
        logger.info(
            "%s: run %s retried in %.1f s (attempt %d of %d)", spec.name, run.pk, delay, attempt, spec.retries
        )


def reap_lost_runs() -> int:
    """Close the runs of lost processes (never this process's own) and queue their retries."""
    lost = runs.reap_lost(stale_after=stayy_settings.run_stale_after, keep=tracker.running())
    if lost:
        logger.warning("closed %d run(s) of lost processes as failed", len(lost))
        alerts.runs_lost(lost)
    for run in lost:
        retry_later(run.pk)
    return len(lost)


def execute(
    spec: JobSpec,
    run: JobRun,
    *,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    on_started: Callable[[], None] | None = None,
    on_hung: Callable[[str], None] | None = None,
) -> str:
    """Run the handler for a claimed run row and record its outcome; returns the final status.

    A handler still executing ``JOB_SHUTDOWN_GRACE`` after its timeout is abandoned: its run is
    recorded so, and ``on_hung(reason)`` (default: the process leaves, :meth:`RunTracker.leave`)
    is called from another thread.
    """
    saver = _ProgressSaver(run.pk, on_progress, store=not spec.atomic)
    ctx = JobContext(
        job_name=spec.name,
        run_id=run.pk,
        scheduled_for=run.scheduled_for,
        trigger=run.trigger,
        timeout=spec.timeout,
        attempt=run.attempt,
        on_progress=saver,
        stale_after=stayy_settings.run_stale_after,
    )
    saver.ctx = ctx
    timed_out = threading.Event()
    run_log = RunLog(max_bytes=stayy_settings.run_log_max_bytes)
    grace = stayy_settings.shutdown_grace

    def abandon() -> None:
        """Still executing ``grace`` s after its timeout: this process cannot stop it, so it leaves."""
        if ctx.returned:
            return
        reason = f"abandoned: process exited ({grace:g} s past the timeout the handler had not returned)"
        try:
            close_old_connections()
            if runs.abandon_timed_out(run.pk, note=reason):
                retry_later(run.pk)
        except DatabaseError as exc:
            ctx.logger.error("could not record the abandoned run: %s", exc)
        finally:
            connections.close_all()
        (on_hung or tracker.leave)(
            f"run {run.pk} of {spec.name} ignored its cancellation for {grace:g} s past its timeout"
        )

    def on_deadline() -> None:
        timed_out.set()
        deadlines.call_after(grace, abandon, name=f"stayy-hung-{spec.name}")
        ctx.cancel(f"timed out after {spec.timeout:g} s")
        # Logged first, so that the log stored with the timed-out run ends with it.
        ctx.logger.warning("run timed out after %g s; cancellation requested", spec.timeout)
        try:
            close_old_connections()
            if runs.mark_timed_out(run, timeout=spec.timeout, log=run_log.text()):
                alerts.run_ended(job_name=spec.name, run_id=run.pk, status=Status.TIMED_OUT)
        except DatabaseError as exc:
            ctx.logger.error("could not record the timeout: %s", exc)
        finally:
            connections.close_all()  # the deadline's thread ends here

    tracker.register(run.pk, ctx)
    if on_started is not None:
        on_started()  # from here on, shutdown reaches this run through the tracker
    check_in = alerts.run_started(spec)
    watchdog = deadlines.call_after(spec.timeout, on_deadline, name=f"stayy-timeout-{spec.name}")
    # Every line logged in this thread until the handler returns is kept with the run.
    with bind_run(spec.name, run.pk, log=run_log):
        ctx.logger.info("run started (%s, scheduled for %s)", run.trigger, run.scheduled_for.isoformat())
        try:
            if spec.atomic:
                outcome = _call_atomically(spec, ctx, run, timed_out=timed_out, run_log=run_log)
            else:
                outcome = _call(spec, ctx)
        finally:
            ctx.returned = True
            watchdog.cancel()
    status, error, exc_info = outcome.status, outcome.error, outcome.exc
    if timed_out.is_set():
        status = Status.TIMED_OUT
    try:
        ended = outcome.ended or _record_outcome(
            ctx, run, status=status, error=error, exc=exc_info, log=run_log.text()
        )
    finally:
        tracker.unregister(run.pk)
    if ended.own:
        alerts.run_ended(job_name=spec.name, run_id=run.pk, status=status, job_alerting=ended.job_alerting)
    if ended.own and status in RETRIED:
        retry_later(run.pk)
    duration_s = time.monotonic() - ctx.started_monotonic
    alerts.run_checked_out(spec, check_in, status=status, duration=duration_s)
    started_at = run.started_at
    metrics.observe_run(
        spec.name,
        str(status),
        duration_s=duration_s,
        lateness_s=(
            (started_at - run.scheduled_for).total_seconds()
            if run.trigger == JobRun.Trigger.SCHEDULE and started_at is not None
            else None
        ),
    )
    log = ctx.logger.info if status in (Status.SUCCEEDED, Status.SKIPPED) else ctx.logger.warning
    log("run %s%s", status, f": {error}" if error else "", exc_info=exc_info)
    return str(status)

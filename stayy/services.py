"""Business logic of the job runtime, shared by the API, the admin and the commands.

Nothing here runs a job inside the caller: run-now is a queued run row that
the current leader claims and executes; pause, resume and live edits are
catalog states the leader applies within a second.

A job's options come from three places, each winning over the one before:
its ``@job(...)`` declaration in code, ``JOB_OVERRIDES`` (read at startup),
and edits made live through the API or the admin (stored in its catalog row,
audited in the admin's history, kept across restarts until reset).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from stayy.conf import stayy_settings
from stayy.models import AlertDelivery, Job, JobRun, LeaderLease
from stayy.repository import alerts as alert_rows, catalog, leases, run_queries, runs
from stayy.scheduling import registry, runner
from stayy.scheduling.triggers import CronSchedule, InvalidSchedule, next_fire_times

#: The options an edit may change, in JOB_OVERRIDES' keys.
EDITABLE = (
    "interval", "cron", "timezone", "enabled", "timeout", "retries", "overlap", "jitter", "alert_after",
)  # fmt: skip
_SCHEDULE_KEYS = ("interval", "cron", "timezone")


class InvalidEdit(Exception):
    """An edit that cannot apply; ``errors`` maps each bad field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {problem}" for field, problem in errors.items()))
        self.errors = errors


class JobNotFound(LookupError):
    """No job of that name is registered in this deployment (the message names the known ones)."""


def _spec(name: str) -> registry.JobSpec:
    try:
        return registry.get(name)
    except registry.UnknownJob as exc:
        raise JobNotFound(str(exc)) from None


def job_names() -> list[str]:
    """The names of the registered jobs, sorted."""
    return registry.job_names()


def job_get(*, name: str) -> Job:
    """The catalog row of a registered job (raises :class:`JobNotFound`)."""
    return catalog.ensure(_spec(name))


def job_list() -> list[Job]:
    """Every registered job's catalog row, annotated with its last run (``last_run_*``) and
    ``schedule_source``."""
    for spec in registry.all_jobs():
        catalog.ensure(spec)
    registered = set(registry.job_names())
    return [_with_source(job) for job in catalog.with_last_run() if job.name in registered]


def jobs_with_last_run(*, jobs: QuerySet[Job]) -> QuerySet[Job]:
    """``jobs`` annotated with their last run (``last_run_*``), for pages that filter and sort them."""
    return run_queries.with_last_run(jobs)


def job_get_with_last_run(*, name: str) -> Job | None:
    """A registered job's catalog row annotated with its last run, like :func:`job_list` rows."""
    job_get(name=name)
    job = run_queries.job_with_last_run(name)
    return _with_source(job) if job is not None else None


def _with_source(job: Job) -> Job:
    """Annotate ``schedule_source``: where the job's schedule comes from ("code", "env" or "edited")."""
    if any(key in job.edits for key in _SCHEDULE_KEYS):
        source = "edited"
    elif any(key in stayy_settings.job_overrides.get(job.name, {}) for key in _SCHEDULE_KEYS):
        source = "env"
    else:
        source = "code"
    job.schedule_source = source  # type: ignore[attr-defined]
    return job


def job_edit(*, name: str, changes: dict[str, Any], user: Any) -> Job:
    """Change a job's options live, on top of its code and ``JOB_OVERRIDES``; returns its row.

    Raises :class:`InvalidEdit` naming each bad field, with the words ``JOB_OVERRIDES`` uses.
    The leader applies the change within a second; the run in flight finishes, and the next tick
    follows the new schedule.
    """
    base = _spec(name)
    with catalog.locked(base) as job:
        old = dict(job.edits)
        edits, spec = _edited(base, old, changes)
        message = "Edited " + "; ".join(
            f"{key}: {_shown(old.get(key, _from(base, key)))} → {_shown(edits.get(key))}" for key in changes
        )
        catalog.save_edits(
            job, edits=edits, spec=spec, by=user.get_username(), user_id=user.pk, message=message
        )
    return _job_or_gone(name)


@dataclass(frozen=True)
class EditPreview:
    """What an edit would make of a job, before it is saved."""

    edits: dict[str, Any]
    schedule: str
    trigger: str
    next_fire_times: list[datetime]
    spec: registry.JobSpec


def job_edit_preview(*, name: str, changes: dict[str, Any], count: int = 5) -> EditPreview:
    """The schedule in words and the next ``count`` fire times an edit would give; nothing is saved.

    Raises :class:`InvalidEdit` exactly as :func:`job_edit` would.
    """
    base = _spec(name)
    edits, spec = _edited(base, catalog.edits_of(name), changes)
    return EditPreview(
        edits=edits,
        schedule=spec.schedule.describe(),
        trigger=spec.schedule.key,
        next_fire_times=next_fire_times(spec.schedule, after=timezone.now(), count=count),
        spec=spec,
    )


def _edited(
    base: registry.JobSpec, old: dict[str, Any], changes: dict[str, Any]
) -> tuple[dict[str, Any], registry.JobSpec]:
    """The edits after ``changes`` and the spec they make (raises :class:`InvalidEdit`)."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise InvalidEdit({key: f"cannot be edited; editable: {', '.join(EDITABLE)}" for key in unknown})
    given = {key: changes[key] for key in _SCHEDULE_KEYS if key in changes}
    if "interval" in given and len(given) > 1:
        # An interval with a crontab line or a time zone: refused in JOB_OVERRIDES' words.
        try:
            registry.override_spec(base, given)
        except InvalidSchedule as exc:
            raise InvalidEdit({"cron" if "cron" in given else "timezone": str(exc)}) from None
    edits = _merged(old, changes, base=base)
    errors = _edit_errors(base, edits, changes)
    if errors:
        raise InvalidEdit(errors)
    return edits, registry.override_spec(base, edits)


def job_reset(*, name: str, user: Any) -> Job:
    """Drop a job's live edits: back to its code declaration plus ``JOB_OVERRIDES``."""
    base = _spec(name)
    with catalog.locked(base) as job:
        if job.edits:
            dropped = ", ".join(f"{key}={_shown(value)}" for key, value in sorted(job.edits.items()))
            message = f"Reset {dropped}"
            catalog.save_edits(
                job, edits={}, spec=base, by=user.get_username(), user_id=user.pk, message=message
            )
    return _job_or_gone(name)


def job_alert_deliveries(*, name: str, limit: int = 20) -> list[AlertDelivery]:
    """A job's newest alert deliveries (each event per channel, with its attempts), newest first."""
    return alert_rows.recent_deliveries(name, limit=limit)


def job_effective_spec(*, name: str) -> registry.JobSpec:
    """The job's spec with its live edits applied (raises :class:`JobNotFound`)."""
    return registry.edited(_spec(name), catalog.edits_of(name))


def _job_or_gone(name: str) -> Job:
    job = job_get_with_last_run(name=name)
    if job is None:  # deleted meanwhile
        raise JobNotFound(f"unknown job {name!r}")
    return job


def _merged(old: dict[str, Any], changes: dict[str, Any], *, base: registry.JobSpec) -> dict[str, Any]:
    """The edits after ``changes``: an interval and a crontab line replace each other; a time zone
    alone re-times the crontab line in force."""
    edits = {**old, **changes}
    if "interval" in changes:
        edits.pop("cron", None)
        edits.pop("timezone", None)
    elif "cron" in changes:
        edits.pop("interval", None)
        if "timezone" not in changes:
            edits.pop("timezone", None)
    elif "timezone" in changes and "cron" not in edits and isinstance(base.schedule, CronSchedule):
        edits["cron"] = base.schedule.expression
    return edits


def _edit_errors(base: registry.JobSpec, edits: dict[str, Any], changes: dict[str, Any]) -> dict[str, str]:
    """Each changed field's problem, checked alone against ``base`` (schedule fields together)."""
    errors: dict[str, str] = {}
    for key in changes:
        if key in _SCHEDULE_KEYS:
            continue
        try:
            registry.override_spec(base, {key: edits[key]})
        except InvalidSchedule as exc:
            errors[key] = str(exc)
    schedule = {key: edits[key] for key in _SCHEDULE_KEYS if key in edits}
    if schedule and any(key in changes for key in _SCHEDULE_KEYS):
        try:
            registry.override_spec(base, schedule)
        except InvalidSchedule as exc:
            blamed = next(key for key in ("timezone", "cron", "interval") if key in changes)
            if "timezone" in changes and len([k for k in _SCHEDULE_KEYS if k in changes]) > 1:
                # Both changed: blame the time zone only if the line alone parses.
                try:
                    registry.override_spec(base, {k: v for k, v in schedule.items() if k != "timezone"})
                except InvalidSchedule:
                    blamed = "cron" if "cron" in changes else "interval"
            errors[blamed] = str(exc)
    return errors


def _from(spec: registry.JobSpec, key: str) -> Any:
    """The value of one option in ``spec``, in JOB_OVERRIDES' terms (for the audit's "old" side)."""
    if key in _SCHEDULE_KEYS:
        schedule = spec.schedule
        if isinstance(schedule, CronSchedule):
            return {"cron": schedule.expression, "timezone": schedule.timezone}.get(key)
        return getattr(schedule, "seconds", None) if key == "interval" else None
    if key == "alert_after":
        return spec.overdue_after
    return getattr(spec, key)


def _shown(value: Any) -> str:
    return "unset" if value is None else repr(value)


def job_runs(*, name: str) -> QuerySet[JobRun]:
    """A registered job's runs, newest first (raises :class:`JobNotFound`)."""
    job_get(name=name)
    return run_queries.runs_of_job(name)


def job_run_get(*, name: str, run_id: int) -> JobRun | None:
    """One run of a registered job, traceback included; ``None`` if it has no such run."""
    job_get(name=name)
    return run_queries.run_of_job(job_name=name, run_id=run_id)


def leader_get(*, name: str = "") -> LeaderLease | None:
    """The current leader of the job servers of ``name`` (default: this deployment's ``JOB_NAME``),
    if one holds an unexpired lease."""
    return leases.current_leader(name or stayy_settings.job_name)


def lease_backend() -> str:
    """Where this cluster's leader lease lives: ``redis`` or ``database``."""
    return leases.backend_for(stayy_settings.redis_url)


def job_request_run(*, name: str, requested_by: str) -> JobRun:
    """Queue a manual run; the leader picks it up within a second or two."""
    job_get(name=name)
    return runs.create_queued(job_name=name, requested_by=requested_by)


def job_pause(*, name: str, requested_by: str) -> Job:
    job_get(name=name)
    catalog.set_paused(name, paused=True, by=requested_by)
    return job_get(name=name)


def job_resume(*, name: str, requested_by: str) -> Job:
    job_get(name=name)
    catalog.set_paused(name, paused=False, by=requested_by)
    return job_get(name=name)


class JobBusy(Exception):
    """The job is executing in another process."""


def job_run_in_process(
    *,
    name: str,
    force: bool = False,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    on_hung: Callable[[str], None] | None = None,
) -> JobRun:
    """Run a job once, now, in the calling thread (``runjobs --run``); takes no lease.

    Refuses with :class:`JobBusy` if the job is executing elsewhere, unless ``force``. A run of a
    process that stopped heartbeating ``JOB_RUN_STALE_AFTER`` ago is closed first as lost (and
    retried, if its job retries).
    ``on_hung(reason)`` is called (from another thread) if the handler is still executing
    ``JOB_SHUTDOWN_GRACE`` after its timeout; it must end the process.
    """
    spec = job_effective_spec(name=name)
    runner.reap_lost_runs()
    try:
        run = runs.create_started(job_name=name, trigger=JobRun.Trigger.COMMAND, forced=force)
    except runs.JobExecuting as busy:
        raise JobBusy(f"{name} is executing elsewhere: {busy}") from None
    runner.execute(spec, run, on_progress=on_progress, on_hung=on_hung)
    run.refresh_from_db()
    return run


def job_runs_purge(*, should_stop: Callable[[], bool] = lambda: False, batch_size: int = 5000) -> int:
    """Delete finished runs older than the retention, in batches, and the alerts sent before it;
    returns how many runs."""
    cutoff = timezone.now() - timedelta(days=stayy_settings.run_retention_days)
    deleted = 0
    while not should_stop():
        batch = runs.purge_batch(cutoff, batch_size=batch_size)
        deleted += batch
        if batch < batch_size:
            break
    alert_rows.purge_before(cutoff)
    return deleted


# --- The jobs dashboard ---


@dataclass(frozen=True)
class JobOverview:
    """One job on the dashboard: its catalog row, how it fared lately and its newest runs."""

    job: Job
    stats: run_queries.RunStats
    recent_runs: list[JobRun]  # newest first; queued requests left out

    @property
    def last_run(self) -> JobRun | None:
        return self.recent_runs[0] if self.recent_runs else None


@dataclass(frozen=True)
class JobsDashboard:
    jobs: list[JobOverview]
    leader: LeaderLease | None
    lease_backend: str
    stats_window: timedelta
    timeline: JobsTimeline


def jobs_dashboard(
    *,
    chart_runs: int = 50,
    stats_window: timedelta = timedelta(hours=24),
    timeline_window: timedelta = timedelta(hours=1),
    timeline_runs: int = 400,
) -> JobsDashboard:
    """Every registered job with its stats over ``stats_window``, its newest ``chart_runs`` runs, and
    the timeline of the last ``timeline_window`` (at most ``timeline_runs`` runs a job).

    A fixed number of queries however long the run history is (one more per job
    to make sure its catalog row exists, as :func:`job_list` does).
    """
    jobs = job_list()
    names = [job.name for job in jobs]
    stats = run_queries.run_stats(names, since=timezone.now() - stats_window)
    recent = run_queries.recent_runs(names, limit=max(chart_runs, timeline_runs))
    return JobsDashboard(
        jobs=[
            JobOverview(job=job, stats=stats[job.name], recent_runs=recent[job.name][:chart_runs])
            for job in jobs
        ],
        leader=leader_get(),
        lease_backend=lease_backend(),
        stats_window=stats_window,
        timeline=_timeline(recent, window=timeline_window),
    )


@dataclass(frozen=True)
class LeaderChange:
    """A new leader, seen in the runs: the first run it executed in the window."""

    at: datetime
    host: str
    pid: int | None


@dataclass(frozen=True)
class JobsTimeline:
    """Each job's runs that overlap ``[start, end]``, oldest first, and the leader changes among them."""

    start: datetime
    end: datetime
    runs: dict[str, list[JobRun]]
    leader_changes: list[LeaderChange]


#: Runs a leader executes (a command's run is executed where the command runs).
_LEADER_TRIGGERS = (JobRun.Trigger.SCHEDULE, JobRun.Trigger.MANUAL, JobRun.Trigger.RETRY)


def jobs_timeline(*, window: timedelta = timedelta(hours=1), per_job: int = 400) -> JobsTimeline:
    """Every registered job's runs over the last ``window`` (at most its newest ``per_job``)."""
    names = [job.name for job in job_list()]
    return _timeline(run_queries.recent_runs(names, limit=per_job), window=window)


def _timeline(recent: dict[str, list[JobRun]], *, window: timedelta) -> JobsTimeline:
    """The runs of ``recent`` (newest first, by job) that overlap the last ``window``, from every host,
    and where the leader changed: a leader executes the scheduled, manual and retried runs, so a new
    host and pid among them, in start order, is a new leader."""
    end = timezone.now()
    start = end - window
    runs: dict[str, list[JobRun]] = {}
    for name, newest_first in recent.items():
        shown = [
            run
            for run in newest_first
            if run.started_at is not None and (run.finished_at or end) >= start and run.started_at <= end
        ]
        runs[name] = sorted(shown, key=lambda run: run.started_at or end)
    led = sorted(
        (run for shown in runs.values() for run in shown if run.trigger in _LEADER_TRIGGERS),
        key=lambda run: run.started_at or end,
    )
    changes: list[LeaderChange] = []
    previous: tuple[str, int | None] | None = None
    for run in led:
        holder = (run.host, run.pid)
        if previous is not None and holder != previous and run.started_at is not None:
            changes.append(LeaderChange(at=run.started_at, host=run.host, pid=run.pid))
        previous = holder
    return JobsTimeline(start=start, end=end, runs=runs, leader_changes=changes)

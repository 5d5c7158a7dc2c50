"""Business logic of the job runtime, shared by the API, the admin and the commands.

Nothing here runs a job inside the caller: run-now is a queued run row that
the current leader claims and executes; pause and resume are catalog states
the leader applies within a second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from stayy.conf import stayy_settings
from stayy.models import Job, JobRun, LeaderLease
from stayy.repository import catalog, leases, run_queries, runs
from stayy.scheduling import registry, runner


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
    """Every registered job's catalog row, annotated with its last run (``last_run_*``)."""
    for spec in registry.all_jobs():
        catalog.ensure(spec)
    registered = set(registry.job_names())
    return [job for job in catalog.with_last_run() if job.name in registered]


def jobs_with_last_run(*, jobs: QuerySet[Job]) -> QuerySet[Job]:
    """``jobs`` annotated with their last run (``last_run_*``), for pages that filter and sort them."""
    return run_queries.with_last_run(jobs)


def job_get_with_last_run(*, name: str) -> Job | None:
    """A registered job's catalog row annotated with its last run, like :func:`job_list` rows."""
    job_get(name=name)
    return run_queries.job_with_last_run(name)


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
    spec = _spec(name)
    runner.reap_lost_runs()
    try:
        run = runs.create_started(job_name=name, trigger=JobRun.Trigger.COMMAND, forced=force)
    except runs.JobExecuting as busy:
        raise JobBusy(f"{name} is executing elsewhere: {busy}") from None
    runner.execute(spec, run, on_progress=on_progress, on_hung=on_hung)
    run.refresh_from_db()
    return run


def job_runs_purge(*, should_stop: Callable[[], bool] = lambda: False, batch_size: int = 5000) -> int:
    """Delete finished runs older than the retention, in batches; returns how many."""
    cutoff = timezone.now() - timedelta(days=stayy_settings.run_retention_days)
    deleted = 0
    while not should_stop():
        batch = runs.purge_batch(cutoff, batch_size=batch_size)
        deleted += batch
        if batch < batch_size:
            break
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


def jobs_dashboard(*, chart_runs: int = 50, stats_window: timedelta = timedelta(hours=24)) -> JobsDashboard:
    """Every registered job with its stats over ``stats_window`` and its newest ``chart_runs`` runs.

    A fixed number of queries however long the run history is (one more per job
    to make sure its catalog row exists, as :func:`job_list` does).
    """
    jobs = job_list()
    names = [job.name for job in jobs]
    stats = run_queries.run_stats(names, since=timezone.now() - stats_window)
    recent = run_queries.recent_runs(names, limit=chart_runs)
    return JobsDashboard(
        jobs=[JobOverview(job=job, stats=stats[job.name], recent_runs=recent[job.name]) for job in jobs],
        leader=leader_get(),
        lease_backend=lease_backend(),
        stats_window=stats_window,
    )

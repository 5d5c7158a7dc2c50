"""Business logic of the job runtime, shared by the API, the admin and the commands.

Nothing here runs a job inside the caller: run-now is a queued run row that
the current leader claims and executes; pause and resume are catalog states
the leader applies within a second.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.utils import timezone

from stayy.conf import stayy_settings
from stayy.models import Job, JobRun
from stayy.repository import catalog, runs
from stayy.scheduling import registry


def job_get(*, name: str) -> Job:
    """The catalog row of a registered job (raises :class:`registry.UnknownJob`)."""
    return catalog.ensure(registry.get(name))


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

"""Read-only queries behind the jobs API and admin: run history pages, one run, last runs, dashboard stats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import CumeDist

from stayy.models import Job, JobRun


def runs_of_job(job_name: str) -> QuerySet[JobRun]:
    """A job's runs, newest first, without traceback and log (only the run detail shows them)."""
    return (
        JobRun.objects.filter(job_name=job_name).defer("traceback", "log").order_by("-scheduled_for", "-id")
    )


def run_of_job(*, job_name: str, run_id: int) -> JobRun | None:
    """One run of a job, traceback and log included; ``None`` if it does not exist or is another job's."""
    return JobRun.objects.filter(job_name=job_name, pk=run_id).first()


def last_run_annotations() -> dict[str, Subquery]:
    """``last_run_id``, ``last_run_status`` and ``last_run_at`` of each job: its newest run that started.

    Queued run requests are left out: they say nothing yet about how the job fares.
    """
    newest = (
        JobRun.objects.filter(job_name=OuterRef("name"))
        .exclude(status=JobRun.Status.QUEUED)
        .order_by("-scheduled_for", "-id")
    )
    return {
        "last_run_id": Subquery(newest.values("id")[:1]),
        "last_run_status": Subquery(newest.values("status")[:1]),
        "last_run_at": Subquery(newest.values("scheduled_for")[:1]),
    }


def with_last_run(jobs: QuerySet[Job]) -> QuerySet[Job]:
    annotations: dict[str, Any] = last_run_annotations()
    return jobs.annotate(**annotations)


def job_with_last_run(name: str) -> Job | None:
    """One catalog row annotated like :func:`stayy.services.job_list` annotates them all."""
    return with_last_run(Job.objects.filter(name=name)).first()


# --- The jobs dashboard: per-job statistics and recent runs, in a fixed number of queries ---

#: Statuses of runs that executed to an end; the success rate and p95 are taken over these.
FINISHED = (JobRun.Status.SUCCEEDED, JobRun.Status.FAILED, JobRun.Status.TIMED_OUT)


@dataclass(frozen=True)
class RunStats:
    """How a job fared since a moment: finished runs, how many succeeded, p95 duration."""

    finished: int
    succeeded: int
    p95_duration_ms: int | None

    @property
    def success_rate(self) -> float | None:
        """Succeeded / finished (failed and timed-out runs count against it); ``None`` with no runs."""
        return self.succeeded / self.finished if self.finished else None


def run_stats(job_names: list[str], *, since: datetime) -> dict[str, RunStats]:
    """Each job's finished runs scheduled since ``since``: counts and the p95 duration (two queries).

    The p95 is the nearest-rank percentile: the shortest duration that at least
    95 % of the runs did not exceed (a window function, so SQLite computes it
    too), found per catalog row by a subquery: jobs without a catalog row get
    none. Both queries read the runs through the ``(job_name, scheduled_for)`` index.
    """
    window = JobRun.objects.filter(job_name__in=job_names, scheduled_for__gte=since, status__in=FINISHED)
    counts = {
        row["job_name"]: row
        for row in window.order_by()
        .values("job_name")
        .annotate(finished=Count("id"), succeeded=Count("id", filter=Q(status=JobRun.Status.SUCCEEDED)))
    }
    ranked = (
        window.filter(job_name=OuterRef("name"), duration_ms__isnull=False)
        .annotate(cumulative=Window(CumeDist(), order_by=F("duration_ms").asc()))
        .filter(cumulative__gte=0.95)
        .order_by("duration_ms")
    )
    p95 = dict(
        Job.objects.filter(name__in=job_names)
        .annotate(p95=Subquery(ranked.values("duration_ms")[:1]))
        .values_list("name", "p95")
    )
    return {
        name: RunStats(
            finished=counts[name]["finished"] if name in counts else 0,
            succeeded=counts[name]["succeeded"] if name in counts else 0,
            p95_duration_ms=p95.get(name),
        )
        for name in job_names
    }


def recent_runs(job_names: list[str], *, limit: int) -> dict[str, list[JobRun]]:
    """Each job's newest ``limit`` runs that left the queue, newest first (two queries).

    The first query finds, per job, the scheduled time of its ``limit``-th newest
    run (an index lookup per job); the second reads the runs at or after it.
    Runs sharing that boundary time are trimmed here. Jobs without a catalog
    row get no runs (the services write the rows before asking).
    """
    started = JobRun.objects.exclude(status=JobRun.Status.QUEUED)
    boundary_time = Subquery(
        started.filter(job_name=OuterRef("name"))
        .order_by("-scheduled_for", "-id")
        .values("scheduled_for")[limit - 1 : limit]
    )
    boundaries = dict(
        Job.objects.filter(name__in=job_names)
        .annotate(boundary=boundary_time)
        .values_list("name", "boundary")
    )
    result: dict[str, list[JobRun]] = {name: [] for name in job_names}
    if not boundaries:
        return result
    wanted = Q()
    for name, boundary in boundaries.items():
        # No boundary: the job has fewer than ``limit`` runs, all of them wanted.
        wanted |= Q(job_name=name, scheduled_for__gte=boundary) if boundary else Q(job_name=name)
    rows = (
        started.filter(wanted)
        .only(
            "id",
            "job_name",
            "scheduled_for",
            "status",
            "duration_ms",
            "trigger",
            "started_at",
            "finished_at",
            "host",
            "pid",
        )
        .order_by("-scheduled_for", "-id")
    )
    for run in rows:
        if len(result[run.job_name]) < limit:
            result[run.job_name].append(run)
    return result

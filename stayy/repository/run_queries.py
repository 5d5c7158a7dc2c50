"""Read-only queries behind the jobs API and admin: run history pages, one run, a job's last run."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from stayy.models import Job, JobRun


def runs_of_job(job_name: str) -> QuerySet[JobRun]:
    """A job's runs, newest first, without the traceback (only the run detail shows it)."""
    return JobRun.objects.filter(job_name=job_name).defer("traceback").order_by("-scheduled_for", "-id")


def run_of_job(*, job_name: str, run_id: int) -> JobRun | None:
    """One run of a job, traceback included; ``None`` if it does not exist or is another job's."""
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

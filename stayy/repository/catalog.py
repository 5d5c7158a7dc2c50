"""The job catalog table: what the leader schedules, pause state, live edits, next run times."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from stayy.models import Job
from stayy.repository import run_queries


class StoredSchedule(Protocol):
    @property
    def key(self) -> str: ...

    def describe(self) -> str: ...


class CatalogSpec(Protocol):
    """What the catalog stores of a job's configuration (a :class:`stayy.scheduling.registry.JobSpec`)."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def schedule(self) -> StoredSchedule: ...
    @property
    def timeout(self) -> float: ...
    @property
    def misfire_grace(self) -> float: ...
    @property
    def overlap(self) -> str: ...
    @property
    def retries(self) -> int: ...
    @property
    def retry_backoff(self) -> float: ...
    @property
    def atomic(self) -> bool: ...
    @property
    def jitter(self) -> float: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def overdue_after(self) -> float: ...


def _spec_fields(spec: CatalogSpec) -> dict[str, object]:
    return {
        "description": spec.description,
        "trigger": spec.schedule.key,
        "schedule": spec.schedule.describe(),
        "timeout": spec.timeout,
        "misfire_grace": spec.misfire_grace,
        "overlap": spec.overlap,
        "retries": spec.retries,
        "retry_backoff": spec.retry_backoff,
        "atomic": spec.atomic,
        "jitter": spec.jitter,
        "enabled": spec.enabled,
        "alert_after": spec.overdue_after,
    }


def sync_from_specs(specs: Sequence[CatalogSpec], *, now: datetime | None = None) -> dict[str, Job]:
    """Write the leader's configuration into the catalog; returns the rows by name.

    A job whose trigger changed or that was (re-)enabled restarts its
    ``schedule_since`` at ``now`` (the cluster's clock; default this host's):
    ticks of the old schedule are not owed a run.
    """
    now = now or timezone.now()
    existing = {job.name: job for job in Job.objects.all()}
    rows: dict[str, Job] = {}
    for spec in specs:
        fields = _spec_fields(spec)
        job = existing.get(spec.name)
        if job is None:
            job = Job.objects.create(name=spec.name, schedule_since=now, **fields)
        else:
            changed = {k: v for k, v in fields.items() if getattr(job, k) != v}
            # Ticks are owed from when a leader first schedules the job (a row made by
            # listing the jobs has none yet), its trigger changed, or it was re-enabled.
            if "trigger" in changed or changed.get("enabled") is True or job.schedule_since is None:
                changed["schedule_since"] = now
            if changed:
                for key, value in changed.items():
                    setattr(job, key, value)
                job.save(update_fields=[*changed, "updated_at"])
        rows[spec.name] = job
    return rows


def ensure(spec: CatalogSpec) -> Job:
    """The catalog row of a job, created from the local configuration if no leader wrote it yet."""
    job, _ = Job.objects.get_or_create(
        name=spec.name, defaults={**_spec_fields(spec), "schedule_since": None}
    )
    return job


def get(name: str) -> Job | None:
    return Job.objects.filter(name=name).first()


def schedule_since(name: str) -> datetime | None:
    """When the job's current schedule began (``None``: no leader scheduled it yet)."""
    return Job.objects.filter(name=name).values_list("schedule_since", flat=True).first()


def pause_states() -> dict[str, bool]:
    return dict(Job.objects.values_list("name", "paused"))


def control_states() -> dict[str, tuple[bool, dict[str, Any]]]:
    """What the leader follows from any process: each job's pause state and live edits."""
    return {
        name: (paused, edits or {})
        for name, paused, edits in Job.objects.values_list("name", "paused", "edits")
    }


def all_edits() -> dict[str, dict[str, Any]]:
    return {name: edits for name, edits in Job.objects.values_list("name", "edits") if edits}


def edits_of(name: str) -> dict[str, Any]:
    return Job.objects.filter(name=name).values_list("edits", flat=True).first() or {}


@contextmanager
def locked(spec: CatalogSpec) -> Iterator[Job]:
    """The job's catalog row, locked for the transaction of the ``with`` block (created if missing)."""
    with transaction.atomic():
        ensure(spec)
        yield Job.objects.select_for_update().get(name=spec.name)


def save_edits(
    job: Job, *, edits: dict[str, Any], spec: CatalogSpec, by: str, user_id: int | None, message: str
) -> None:
    """Store a job's live edits and the configuration they make, and audit it in the admin's history.

    A changed trigger restarts ``schedule_since`` (ticks of the old schedule are not owed a run).
    """
    now = timezone.now()
    fields = _spec_fields(spec)
    if fields["trigger"] != job.trigger or (fields["enabled"] and not job.enabled):
        job.schedule_since = now
    for key, value in fields.items():
        setattr(job, key, value)
    job.edits = edits
    job.edited_by = by if edits else ""
    job.edited_at = now if edits else None
    job.save()
    if user_id is not None:
        LogEntry.objects.log_actions(
            user_id=user_id,
            queryset=[job],
            action_flag=CHANGE,
            change_message=message,
            single_object=True,
        )


def edit_history(name: str, *, limit: int = 20) -> list[LogEntry]:
    """The newest audit entries of a job's edits (the admin history's rows)."""
    content_type = ContentType.objects.get_for_model(Job)
    return list(
        LogEntry.objects.filter(content_type=content_type, object_id=name).order_by("-action_time")[:limit]
    )


def set_paused(name: str, *, paused: bool, by: str) -> None:
    fields: dict[str, object] = {"paused": paused, "paused_by": by if paused else ""}
    if not paused:
        fields["schedule_since"] = timezone.now()
    Job.objects.filter(name=name, paused=not paused).update(**fields)


def mark_resumed(name: str, *, now: datetime) -> None:
    """The leader resumed the job at ``now``: ticks from before are not owed (they were paused)."""
    Job.objects.filter(name=name).update(schedule_since=now)


def set_next_run_times(next_runs: dict[str, datetime | None]) -> None:
    """Store each job's next fire time: one read, and one write for all that changed."""
    changed = []
    for job in Job.objects.filter(name__in=next_runs).only("name", "next_run_at"):
        if job.next_run_at != next_runs[job.name]:
            job.next_run_at = next_runs[job.name]
            changed.append(job)
    Job.objects.bulk_update(changed, ["next_run_at"])


def with_last_run() -> list[Job]:
    """Catalog rows annotated with their newest run (``last_run_id``, ``_status``, ``_at``)."""
    return list(run_queries.with_last_run(Job.objects.all()))

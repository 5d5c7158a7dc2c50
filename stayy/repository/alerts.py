"""Alert rows: the outbox of alerts, and each job's alert state (failing or overdue since when).

An alert is written as one row per channel when its event happens (in the run's thread, after
the run's end is stored), and delivered later by the leader's sender. A row is claimed before it
is sent (``pending`` → ``sending`` in one locked step), so two senders never send it twice; a
failed attempt puts it back to ``pending`` with its next time. Each job sends at most
``max_per_hour`` alerts per channel within an hour; past it, one summary, and the rest are kept as
``suppressed``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Q, Subquery

from stayy.models import AlertDelivery, Job, JobRun
from stayy.repository.clock import cluster_clock

Status = AlertDelivery.Status
Event = AlertDelivery.Event
#: The window of the storm cap.
CAP_WINDOW = timedelta(hours=1)
LAST_ERROR_MAX_CHARS = 2000


@dataclass(frozen=True)
class Recorded:
    """What :func:`record` wrote for one channel: the alert as ``pending`` or ``suppressed``, and
    whether it added the summary."""

    channel: str
    status: str
    summary: bool


def record(
    *,
    job_name: str,
    event: str,
    run_id: int | None,
    payload: dict[str, Any],
    summary_payload: dict[str, Any],
    channels: Iterable[str],
    max_per_hour: int,
) -> list[Recorded]:
    """Write the alert ``event`` of ``job_name`` for each channel, within the job's storm cap.

    The job's catalog row is locked meanwhile, so concurrent alerts of one job count each other.
    An event already recorded for the run (the unique index) is left as it is.
    """
    now = cluster_clock.now()
    recorded = []
    with transaction.atomic():
        Job.objects.select_for_update().filter(name=job_name).first()
        for channel in channels:
            if (
                run_id is not None
                and AlertDelivery.objects.filter(event=event, run_id=run_id, channel=channel).exists()
            ):
                continue
            recent = AlertDelivery.objects.filter(
                job_name=job_name, channel=channel, created_at__gt=now - CAP_WINDOW
            )
            sent = recent.exclude(status=Status.SUPPRESSED).exclude(event=Event.SUPPRESSED).count()
            status = Status.PENDING if sent < max_per_hour else Status.SUPPRESSED
            try:
                with transaction.atomic():
                    AlertDelivery.objects.create(
                        event=event,
                        job_name=job_name,
                        run_id=run_id,
                        channel=channel,
                        status=status,
                        payload=payload,
                        next_attempt_at=now if status == Status.PENDING else None,
                        created_at=now,
                    )
            except IntegrityError:  # recorded meanwhile by another thread (a timeout and the run's end)
                continue
            summary = status == Status.SUPPRESSED and not recent.filter(event=Event.SUPPRESSED).exists()
            if summary:
                AlertDelivery.objects.create(
                    event=Event.SUPPRESSED,
                    job_name=job_name,
                    channel=channel,
                    payload=summary_payload,
                    next_attempt_at=now,
                    created_at=now,
                )
            recorded.append(Recorded(channel=channel, status=status, summary=summary))
    return recorded


def raised(*, event: str, run_id: int) -> bool:
    """Whether ``event`` of the run has been recorded already (for any channel)."""
    return AlertDelivery.objects.filter(event=event, run_id=run_id).exists()


def mark_alerting(job_name: str) -> None:
    """The job failed: its next success is a recovery."""
    Job.objects.filter(name=job_name, alerting_since__isnull=True).update(alerting_since=cluster_clock.now())


def clear_alerting(job_name: str) -> bool:
    """The job succeeded: ``True`` if it was failing or overdue until now (a recovery)."""
    return bool(
        Job.objects.filter(name=job_name)
        .filter(Q(alerting_since__isnull=False) | Q(overdue_alerted_at__isnull=False))
        .update(alerting_since=None, overdue_alerted_at=None)
    )


@dataclass(frozen=True)
class OverdueCandidate:
    name: str
    last_success_at: datetime | None
    since: datetime


def overdue_candidates(names: Iterable[str], *, now: datetime) -> list[OverdueCandidate]:
    """Of the jobs ``names`` (enabled, not paused, scheduled, not yet reported overdue), those whose
    newest success, or the start of their schedule if later, is older than their ``alert_after``.

    One query: each job's newest success is read along its history index.
    """
    newest_success = (
        JobRun.objects.filter(job_name=OuterRef("name"), status=JobRun.Status.SUCCEEDED)
        .order_by("-scheduled_for", "-id")
        .values("finished_at")[:1]
    )
    jobs = (
        Job.objects.filter(
            name__in=list(names),
            paused=False,
            enabled=True,
            schedule_since__isnull=False,
            overdue_alerted_at__isnull=True,
            alert_after__isnull=False,
        )
        .annotate(last_success_at=Subquery(newest_success))
        .values_list("name", "schedule_since", "alert_after", "last_success_at")
    )
    found = []
    for name, schedule_since, alert_after, last in jobs:
        since = max(t for t in (last, schedule_since) if t is not None)
        if now - since > timedelta(seconds=alert_after or 0):
            found.append(OverdueCandidate(name=name, last_success_at=last, since=since))
    return found


def mark_overdue(job_name: str) -> bool:
    """Report the job overdue once per overdue period: ``False`` if it already was."""
    now = cluster_clock.now()
    with transaction.atomic():
        marked = Job.objects.filter(name=job_name, overdue_alerted_at__isnull=True).update(
            overdue_alerted_at=now
        )
        Job.objects.filter(name=job_name, alerting_since__isnull=True).update(alerting_since=now)
    return bool(marked)


def claim_due() -> AlertDelivery | None:
    """Take the oldest alert due for sending (``pending`` → ``sending``, one more attempt); ``None``
    if there is none. Concurrent senders skip each other's rows (``SKIP LOCKED``); on SQLite, which
    has no row locks, the transaction holds the database's write lock from its start
    (``IMMEDIATE``), so claims take turns, and the update still takes the row only if it is
    ``pending``."""
    now = cluster_clock.now()
    with transaction.atomic():
        row = (
            AlertDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=Status.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
            .first()
        )
        if row is None:
            return None
        claimed = AlertDelivery.objects.filter(pk=row.pk, status=Status.PENDING).update(
            status=Status.SENDING, attempts=row.attempts + 1, next_attempt_at=now
        )
    if not claimed:
        return None
    row.status, row.attempts = Status.SENDING, row.attempts + 1
    return row


def has_due() -> bool:
    return AlertDelivery.objects.filter(
        status=Status.PENDING, next_attempt_at__lte=cluster_clock.now()
    ).exists()


def mark_delivered(row_id: int) -> None:
    AlertDelivery.objects.filter(pk=row_id, status=Status.SENDING).update(
        status=Status.DELIVERED, delivered_at=cluster_clock.now(), last_error=""
    )


def mark_attempt_failed(row_id: int, *, error: str, retry_at: datetime | None) -> None:
    """A failed attempt: pending again from ``retry_at``, or ``failed`` for good (``None``)."""
    fields: dict[str, Any] = {"last_error": error[:LAST_ERROR_MAX_CHARS]}
    if retry_at is None:
        fields["status"] = Status.FAILED
    else:
        fields.update(status=Status.PENDING, next_attempt_at=retry_at)
    AlertDelivery.objects.filter(pk=row_id, status=Status.SENDING).update(**fields)


def fail_abandoned(*, older_than: timedelta) -> int:
    """Close alerts left ``sending`` by a sender that stopped mid-delivery as failed: whether they
    arrived is unknown, and sending them again could deliver them twice. A sending row's
    ``next_attempt_at`` is when it was claimed."""
    cutoff = cluster_clock.now() - older_than
    return AlertDelivery.objects.filter(status=Status.SENDING, next_attempt_at__lt=cutoff).update(
        status=Status.FAILED, last_error="the sender stopped during delivery; not sent again"
    )


def purge_before(cutoff: datetime) -> int:
    """Delete alerts recorded before ``cutoff`` that are no longer on their way."""
    old = AlertDelivery.objects.filter(created_at__lt=cutoff).exclude(
        status__in=[Status.PENDING, Status.SENDING]
    )
    return AlertDelivery.objects.filter(pk__in=list(old.values_list("pk", flat=True)[:50_000])).delete()[0]


def get_run(run_id: int) -> JobRun | None:
    return JobRun.objects.filter(pk=run_id).first()


def recent_deliveries(job_name: str, *, limit: int) -> list[AlertDelivery]:
    """A job's newest ``limit`` deliveries, newest first."""
    return list(AlertDelivery.objects.filter(job_name=job_name).order_by("-created_at", "-id")[:limit])

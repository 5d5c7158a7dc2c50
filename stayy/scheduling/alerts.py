"""Alerts: what a run's end or a quiet job raises, and the sender that delivers it.

Events: ``run.failed``, ``run.timed_out``, ``run.lost`` (a run's end), ``job.recovered`` (the first
success after a failure or an overdue report) and ``job.overdue`` (no success for longer than the
job's ``alert_after``; reported once per overdue period). Each is written as a row per channel
(the webhook of ``JOB_ALERT_WEBHOOK_URL``, email to ``ADMINS``) where it happens: in the run's
thread after its end is stored, or in the leader's reaper. Nothing is sent from there.

The leader's loop calls :meth:`AlertSender.poll` every turn: every few seconds it looks for overdue
jobs, and when alerts are due it starts one thread that sends them, so a slow receiver never holds
up the loop or a run. Each alert is claimed before it is sent (at most once); a failed attempt is
tried again after a backoff that doubles, for up to an hour after the event.

Runs also check in with Sentry Crons when ``SENTRY_DSN`` is set (:func:`run_started`,
:func:`run_ended`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, close_old_connections, connections
from django.urls import reverse
from django.utils import timezone

from stayy.conf import stayy_settings
from stayy.models import AlertDelivery, JobRun
from stayy.repository import alert_channels, alerts as alert_rows, cron_monitors
from stayy.repository.clock import cluster_clock
from stayy.scheduling.registry import JobSpec

logger = logging.getLogger("stayy.alerts")

Event = AlertDelivery.Event
Status = JobRun.Status
#: The first retry of a failed delivery waits this long; each next one twice as long, up to the max.
RETRY_FIRST_DELAY = 10.0
RETRY_MAX_DELAY = 600.0
#: A delivery is tried for this long after its event, then given up (``failed``).
RETRY_FOR = 3600.0
#: Seconds between two searches for overdue jobs.
OVERDUE_CHECK_INTERVAL = 5.0
#: Seconds between two looks for due alerts by the leader's loop.
SEND_CHECK_INTERVAL = 1.0
#: A delivery left ``sending`` this long was abandoned by a sender that stopped.
ABANDONED_AFTER = timedelta(minutes=5)

_ENDED_EVENTS = {Status.FAILED: Event.RUN_FAILED, Status.TIMED_OUT: Event.RUN_TIMED_OUT}


def channels() -> list[str]:
    """The channels alerts go to in this deployment."""
    found = []
    if stayy_settings.alert_webhook_url:
        found.append(AlertDelivery.Channel.WEBHOOK.value)
    if alert_channels.email_enabled():
        found.append(AlertDelivery.Channel.EMAIL.value)
    return found


# --- events ---------------------------------------------------------------------------------------


def run_url(run_id: int) -> str:
    path = reverse("admin:stayy_jobrun_change", args=[run_id])
    return stayy_settings.alert_base_url + path


def _run_body(run: JobRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.pk,
        "status": run.status,
        "error": run.error,
        "scheduled_for": _iso(run.scheduled_for),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "host": run.host,
        "url": run_url(run.pk),
    }


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


def _text(event: str, job_name: str, run: JobRun | None, detail: str = "") -> str:
    """One line for people (Slack's ``text``, the email's subject line and first line)."""
    what = {
        Event.RUN_FAILED: "run failed",
        Event.RUN_TIMED_OUT: "run timed out",
        Event.RUN_LOST: "run lost",
        Event.JOB_RECOVERED: "recovered",
        Event.JOB_OVERDUE: "overdue",
        Event.SUPPRESSED: "too many alerts",
    }[Event(event)]
    line = f"Stayy: {job_name} {what}"
    if run is not None:
        line += f" (run {run.pk} on {run.host or '?'})"
    if detail:
        line += f": {detail}"
    elif run is not None and run.error and event != Event.JOB_RECOVERED:
        line += f": {run.error.splitlines()[0][:300]}"
    if run is not None:
        line += f" {run_url(run.pk)}"
    return line


def raise_event(*, job_name: str, event: str, run: JobRun | None = None, detail: str = "") -> None:
    """Record an alert of ``job_name`` for each channel (or only log it, where none is set)."""
    text = _text(event, job_name, run, detail)
    (logger.info if event == Event.JOB_RECOVERED else logger.warning)("alert %s: %s", event, text)
    where = channels()
    if not where:
        return
    cap = stayy_settings.alert_max_per_hour
    summary_text = (
        f"Stayy: {job_name} raised more than {cap} alerts within an hour; its further alerts are held "
        "back (listed in the admin under Alert deliveries) until the hour has passed"
    )
    recorded = alert_rows.record(
        job_name=job_name,
        event=event,
        run_id=run.pk if run is not None else None,
        payload={"event": event, "job": job_name, "run": _run_body(run), "text": text},
        summary_payload={"event": Event.SUPPRESSED.value, "job": job_name, "run": None, "text": summary_text},
        channels=where,
        max_per_hour=cap,
    )
    for row in recorded:
        if row.summary:
            logger.warning(
                "%s: more than %d alerts within an hour by %s; holding back", job_name, cap, row.channel
            )


def run_ended(*, job_name: str, run_id: int, status: str, job_alerting: bool = True) -> None:
    """The hook at a run's end (its end stored; an atomic run's transaction committed): a failure
    or a timeout raises its alert, and the first success after failures raises ``job.recovered``.
    ``job_alerting`` is whether the job was failing or overdue when the end was stored (read with
    it); a success of a job that was not is no recovery, and costs no write.

    Never raises: an alert that cannot be recorded is logged, and the run is not affected.
    """
    try:
        if status in _ENDED_EVENTS:
            alert_rows.mark_alerting(job_name)
            event = _ENDED_EVENTS[Status(status)]
            if alert_rows.raised(event=event, run_id=run_id):
                return  # a timeout is raised at its deadline or when its handler returns, once
            raise_event(job_name=job_name, event=event, run=alert_rows.get_run(run_id))
        elif status == Status.SUCCEEDED and job_alerting and alert_rows.clear_alerting(job_name):
            raise_event(job_name=job_name, event=Event.JOB_RECOVERED, run=alert_rows.get_run(run_id))
    except DatabaseError as exc:
        logger.error("alert of run %s of %s not recorded: %s", run_id, job_name, exc)


def runs_lost(lost: Iterable[JobRun]) -> None:
    """The hook of the reaper: each run it closed as lost raises ``run.lost``."""
    for run in lost:
        try:
            alert_rows.mark_alerting(run.job_name)
            raise_event(job_name=run.job_name, event=Event.RUN_LOST, run=alert_rows.get_run(run.pk))
        except DatabaseError as exc:
            logger.error("alert of lost run %s not recorded: %s", run.pk, exc)


def check_overdue(specs: Iterable[JobSpec]) -> int:
    """Report each enabled job that has gone without a success for longer than its ``alert_after``,
    once per overdue period; returns how many were reported now."""
    now = cluster_clock.now()
    reported = 0
    for found in alert_rows.overdue_candidates([spec.name for spec in specs if spec.enabled], now=now):
        if not alert_rows.mark_overdue(found.name):
            continue
        quiet = (now - found.since).total_seconds()
        detail = (
            f"no success for {quiet:.0f} s (last at {found.last_success_at.isoformat()})"
            if found.last_success_at is not None
            else f"no success since it was scheduled {quiet:.0f} s ago"
        )
        raise_event(job_name=found.name, event=Event.JOB_OVERDUE, detail=detail)
        reported += 1
    return reported


# --- Sentry Crons ---------------------------------------------------------------------------------


def run_started(spec: JobSpec) -> str | None:
    """Check in ``in_progress`` with the job's Sentry monitor (if Sentry is on); returns the id."""
    if not cron_monitors.enabled():
        return None
    schedule = spec.schedule
    config = cron_monitors.monitor_config(
        interval=getattr(schedule, "seconds", None),
        cron=getattr(schedule, "expression", None),
        timezone=getattr(schedule, "timezone", "UTC"),
        misfire_grace=spec.misfire_grace,
        timeout=spec.timeout,
    )
    return cron_monitors.check_in(job_name=spec.name, status="in_progress", config=config)


def run_checked_out(spec: JobSpec, check_in_id: str | None, *, status: str, duration: float) -> None:
    """Close the run's check-in: ``ok`` for a success or a skip, ``error`` otherwise."""
    if check_in_id is None:
        return
    outcome = "ok" if status in (Status.SUCCEEDED, Status.SKIPPED) else "error"
    cron_monitors.check_in(job_name=spec.name, status=outcome, check_in_id=check_in_id, duration=duration)


# --- delivery -------------------------------------------------------------------------------------


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones."""
    return min(RETRY_MAX_DELAY, RETRY_FIRST_DELAY * 2 ** (attempts - 1))


def _send(row: AlertDelivery) -> None:
    body = {**row.payload, "sent_at": timezone.now().isoformat()}
    if row.channel == AlertDelivery.Channel.WEBHOOK:
        url, secret = stayy_settings.alert_webhook_url, stayy_settings.alert_webhook_secret
        if not url:
            raise alert_channels.SendFailed("JOB_ALERT_WEBHOOK_URL is no longer set")
        alert_channels.post_webhook(body, url=url, secret=secret, delivery_id=row.pk)
    else:
        text = str(row.payload.get("text", row.event))
        details = [text, "", f"event: {row.event}", f"job: {row.job_name}"]
        run = row.payload.get("run")
        if run:
            details += [f"{key}: {value}" for key, value in run.items() if value not in (None, "")]
        alert_channels.email_admins(subject=text.removeprefix("Stayy: ")[:150], text="\n".join(details))


def deliver_due(*, limit: int = 100) -> int:
    """Send the alerts due now, each claimed first (at most once), up to ``limit``; returns how
    many were delivered. Safe to call from several threads or processes at once."""
    alert_rows.fail_abandoned(older_than=ABANDONED_AFTER)
    delivered = 0
    for _ in range(limit):
        row = alert_rows.claim_due()
        if row is None:
            break
        try:
            _send(row)
        except alert_channels.SendFailed as exc:
            age = (cluster_clock.now() - row.created_at).total_seconds()
            retry_at = cluster_clock.now() + timedelta(seconds=retry_delay(row.attempts))
            # At most once: an alert that may have arrived is not sent again.
            give_up = exc.maybe_delivered or age + retry_delay(row.attempts) > RETRY_FOR
            alert_rows.mark_attempt_failed(row.pk, error=str(exc), retry_at=None if give_up else retry_at)
            log = logger.error if give_up else logger.warning
            log(
                "alert %s (%s of %s) by %s: attempt %d failed: %s%s",
                row.pk, row.event, row.job_name, row.channel, row.attempts, exc,
                "; giving up" if give_up else f"; next try in {retry_delay(row.attempts):g} s",
            )  # fmt: skip
            continue
        alert_rows.mark_delivered(row.pk)
        delivered += 1
    return delivered


class AlertSender:
    """The leader's side of alerting: overdue checks, and a thread that sends due alerts."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._next_overdue = 0.0
        self._next_send = 0.0

    def poll(self, *, specs: Iterable[JobSpec]) -> None:
        """One turn of the leader's loop: overdue jobs every few seconds, and a sending thread
        when alerts are due and none is sending yet."""
        now = time.monotonic()
        if now >= self._next_overdue:
            self._next_overdue = now + OVERDUE_CHECK_INTERVAL
            check_overdue(specs)
        if now < self._next_send or (self._thread is not None and self._thread.is_alive()):
            return
        self._next_send = now + SEND_CHECK_INTERVAL
        if alert_rows.has_due():
            self._thread = threading.Thread(target=self._send_batch, name="stayy-alerts", daemon=True)
            self._thread.start()

    def _send_batch(self) -> None:
        try:
            close_old_connections()
            deliver_due()
        except DatabaseError as exc:
            logger.error("alerts not sent: database error: %s", exc)
        except Exception:
            logger.exception("alert sender failed")
        finally:
            connections.close_all()


#: The process's sender, polled by its job server while it leads.
sender = AlertSender()

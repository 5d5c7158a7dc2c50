"""Tables of the job runtime: the job catalog, the run history, the leader lease and the alerts.

The run row is also the claim: a partial unique index on
``(job_name, scheduled_for)`` for scheduled runs makes a second execution of
the same tick impossible, and one on ``job_name`` where a run is ``active``
makes a second run of a job that still executes impossible, whichever
process tries it and whatever kind of run it is (only ``runjobs --run
--force`` steps aside, as ``forced``).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Job(models.Model):
    """One entry of the job catalog, as configured on the current leader.

    Pause state and live edits live here, so they survive restarts and
    leadership changes and can be set from any process; the leader applies
    them within a second.
    """

    name = models.CharField(max_length=200, primary_key=True)
    description = models.TextField(blank=True)
    trigger = models.CharField(max_length=200, help_text="Machine form, e.g. 'interval:30'.")
    schedule = models.CharField(max_length=200, help_text="The trigger in words.")
    timeout = models.FloatField(help_text="Seconds.")
    misfire_grace = models.FloatField(help_text="Seconds.")
    overlap = models.CharField(
        max_length=8, default="skip", help_text="A tick that finds the job running: 'skip' it or 'queue' it."
    )
    retries = models.PositiveSmallIntegerField(
        default=0, help_text="Retries of a failed, timed-out or lost run."
    )
    retry_backoff = models.FloatField(default=10.0, help_text="Seconds before the first retry (doubling).")
    atomic = models.BooleanField(
        default=False, help_text="The handler's writes and the run's end commit together."
    )
    jitter = models.FloatField(
        default=0.0, help_text="Seconds a tick may start late, the same in every process."
    )
    alert_after = models.FloatField(
        null=True,
        blank=True,
        help_text="Seconds without a success after which the job is reported overdue.",
    )
    enabled = models.BooleanField(default=True, help_text="From configuration (JOB_OVERRIDES).")
    paused = models.BooleanField(default=False)
    paused_by = models.CharField(max_length=150, blank=True)
    schedule_since = models.DateTimeField(
        null=True,
        blank=True,
        default=timezone.now,
        help_text=(
            "Ticks before this moment are not owed a run (job first scheduled, resumed or re-timed); "
            "empty until a leader first schedules the job."
        ),
    )
    next_run_at = models.DateTimeField(null=True, blank=True)
    edits = models.JSONField(
        default=dict,
        blank=True,
        help_text="Options edited live (API, admin), in JOB_OVERRIDES' keys; they win over it and the code.",
    )
    edited_by = models.CharField(max_length=150, blank=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    alerting_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Failing or overdue since then (alerts were raised); its next success clears it.",
    )
    overdue_alerted_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was reported overdue; its next success clears it."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class JobRun(models.Model):
    """One run of a job: executed, or a tick that was skipped or missed, with why."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        TIMED_OUT = "timed_out", "timed out"
        SKIPPED = "skipped", "skipped"
        MISSED = "missed", "missed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "schedule"
        MANUAL = "manual", "manual"
        COMMAND = "command", "command"
        RETRY = "retry", "retry"

    job_name = models.CharField(max_length=200)
    scheduled_for = models.DateTimeField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    status = models.CharField(max_length=16, choices=Status.choices)
    active = models.BooleanField(
        default=False, help_text="The handler is executing (it may outlive a timed-out run)."
    )
    attempt = models.PositiveSmallIntegerField(
        default=0, db_default=0, help_text="0 for a first run; 1..retries for the retries of it."
    )
    retry_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="retries",
        # The unique constraint below indexes the column already.
        db_index=False,
        help_text="The run retried.",
    )
    not_before = models.DateTimeField(null=True, blank=True, help_text="A queued retry waits until then.")
    forced = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Started with runjobs --run --force: it may execute beside another run of the job.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    error = models.TextField(blank=True, help_text="The error, or why the tick was skipped or missed.")
    traceback = models.TextField(blank=True)
    summary = models.JSONField(default=dict, blank=True)
    log = models.TextField(
        blank=True, help_text="The lines the run logged, capped at JOB_RUN_LOG_MAX_BYTES (the start is kept)."
    )

    class Meta:
        ordering = ["-scheduled_for", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job_name", "scheduled_for"],
                condition=Q(trigger="schedule"),
                name="stayy_jobrun_one_row_per_tick",
            ),
            models.UniqueConstraint(
                fields=["job_name"],
                condition=Q(active=True, forced=False),
                name="stayy_jobrun_one_executing",
            ),
            models.UniqueConstraint(
                fields=["job_name"],
                condition=Q(status="queued", trigger="schedule"),
                name="stayy_jobrun_one_queued_tick",
            ),
            models.UniqueConstraint(fields=["retry_of"], name="stayy_jobrun_one_retry_per_run"),
        ]
        # The history pages filter by one of job, status or trigger (or a date range) and
        # show the newest first: each index matches a filter plus that order exactly, so a
        # page reads its rows straight off one index, however long the history is. The
        # error search uses a trigram index on PostgreSQL (migrations 0003 and 0004; not on SQLite).
        indexes = [
            models.Index(fields=["-scheduled_for", "-id"], name="stayy_jobrun_newest"),
            models.Index(fields=["job_name", "-scheduled_for", "-id"], name="stayy_jobrun_job_newest"),
            models.Index(fields=["status", "-scheduled_for", "-id"], name="stayy_jobrun_status_newest"),
            models.Index(fields=["trigger", "-scheduled_for", "-id"], name="stayy_jobrun_trigger_newest"),
            models.Index(fields=["job_name"], condition=Q(active=True), name="stayy_jobrun_active"),
            models.Index(fields=["created_at"], condition=Q(status="queued"), name="stayy_jobrun_queued"),
        ]

    def __str__(self) -> str:
        return f"{self.job_name} @ {self.scheduled_for:%Y-%m-%d %H:%M:%S} ({self.status})"


class LeaderLease(models.Model):
    """Who leads the job servers of one ``JOB_NAME``.

    With the database lease backend this row *is* the lease (taken and renewed
    with one conditional UPDATE). With Redis the lease lives there and this row
    only tells the API and the admin who leads.
    """

    name = models.CharField(max_length=200, primary_key=True)
    holder = models.CharField(max_length=64, blank=True)
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    backend = models.CharField(max_length=16, blank=True)
    since = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.host}:{self.pid}" if self.holder else f"{self.name}: no leader"


class AlertDelivery(models.Model):
    """One alert on its way to one channel (webhook or email): written when the event happens,
    delivered by the leader's sender, at most once, with retries for up to an hour."""

    class Event(models.TextChoices):
        RUN_FAILED = "run.failed", "run failed"
        RUN_TIMED_OUT = "run.timed_out", "run timed out"
        RUN_LOST = "run.lost", "run lost"
        JOB_RECOVERED = "job.recovered", "job recovered"
        JOB_OVERDUE = "job.overdue", "job overdue"
        SUPPRESSED = "alerts.suppressed", "alerts suppressed"

    class Channel(models.TextChoices):
        WEBHOOK = "webhook", "webhook"
        EMAIL = "email", "email"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SENDING = "sending", "sending"
        DELIVERED = "delivered", "delivered"
        FAILED = "failed", "failed"
        SUPPRESSED = "suppressed", "suppressed"

    event = models.CharField(max_length=32, choices=Event.choices)
    job_name = models.CharField(max_length=200)
    run_id = models.BigIntegerField(null=True, blank=True, help_text="The run it is about, if any.")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    payload = models.JSONField(default=dict, help_text="The body sent, but for its sent_at.")
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "alert deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["event", "run_id", "channel"],
                condition=Q(run_id__isnull=False),
                name="stayy_alert_once_per_run_event",
            ),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="stayy_alert_due"),
            models.Index(fields=["job_name", "channel", "created_at"], name="stayy_alert_job_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.event} of {self.job_name} by {self.channel} ({self.status})"

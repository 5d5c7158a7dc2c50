"""Admin of the job runtime: the job catalog with run now/pause/resume, the run history, the lease.

Everything here is read-only: the tables are written by the job servers. The
only actions are the services' commands, which queue or flag work for the
leader; no job ever runs inside an admin request. The run history can grow
large, so its changelist never counts the whole table and its filters need no
query of their own.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString

from stayy import services
from stayy.models import Job, JobRun, LeaderLease
from stayy.repository import leases, run_queries
from stayy.scheduling import registry

Status = JobRun.Status

STATUS_COLOURS = {
    Status.SUCCEEDED: "#2e7d32",
    Status.FAILED: "#c62828",
    Status.TIMED_OUT: "#ef6c00",
    Status.SKIPPED: "#757575",
    Status.MISSED: "#757575",
    Status.RUNNING: "#1565c0",
    Status.QUEUED: "#1565c0",
}


def status_badge(status: str) -> SafeString:
    label = Status(status).label if status in Status.values else status
    return format_html(
        '<span style="background:{};color:#fff;padding:1px 8px;border-radius:9px;white-space:nowrap">'
        "{}</span>",
        STATUS_COLOURS.get(status, "#757575"),  # type: ignore[call-overload]
        label,
    )


def human_duration(milliseconds: int | None) -> str:
    """``850 ms``, ``1.2 s``, ``3 min``, ``1.5 h``; ``-`` for a run that has not finished."""
    if milliseconds is None:
        return "-"
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{round(seconds, 1):g} s"
    if seconds < 3600:
        return f"{round(seconds / 60, 1):g} min"
    return f"{round(seconds / 3600, 1):g} h"


class ReadOnlyAdmin(admin.ModelAdmin):
    """View-only pages: the job servers write these tables, people only read them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ["name", "schedule", "enabled", "paused", "next_run_at", "last_run"]
    list_filter = ["enabled", "paused"]
    actions = ["run_now", "pause", "resume"]
    fieldsets = (
        (None, {"fields": ("name", "description", "runs")}),
        ("Schedule", {"fields": ("schedule", "trigger", "next_run_at", "schedule_since")}),
        ("Limits", {"fields": ("timeout", "misfire_grace")}),
        ("State", {"fields": ("enabled", "paused", "paused_by", "last_run", "updated_at")}),
    )
    readonly_fields = ["runs", "last_run"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return run_queries.with_last_run(super().get_queryset(request))

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Lists every registered job even before a leader has written the catalog.
        services.job_list()
        return super().changelist_view(request, extra_context)

    @admin.display(description="last run", ordering="last_run_at")
    def last_run(self, job: Job) -> SafeString | str:
        run_id = getattr(job, "last_run_id", None)
        if run_id is None:
            return "-"
        url = reverse("admin:stayy_jobrun_change", args=[run_id])
        return format_html('<a href="{}">{}</a>', url, status_badge(job.last_run_status))  # type: ignore[attr-defined]

    @admin.display(description="runs")
    def runs(self, job: Job) -> SafeString:
        url = reverse("admin:stayy_jobrun_changelist") + "?" + urlencode({"job_name": job.name})
        return format_html('<a href="{}">Run history of {}</a>', url, job.name)

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """Run now, pause and resume: for staff who may change jobs (the pages stay read-only)."""
        return request.user.has_perm("stayy.change_job")

    @admin.action(description="Run now (on the leader)", permissions=["operate"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        queued = []
        for job in queryset:
            try:
                run = services.job_request_run(name=job.name, requested_by=request.user.get_username())
            except registry.UnknownJob as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            queued.append(f"{job.name} (run {run.pk})")
        if queued:
            self.message_user(
                request,
                f"Queued {', '.join(queued)}; the leader starts them within seconds.",
                messages.SUCCESS,
            )
            if services.leader_get() is None:
                self.message_user(
                    request,
                    "No job server leads right now: the runs wait in the queue until one does "
                    "(is JOB_ENABLE on anywhere, or is `manage.py runjobs` running?).",
                    messages.WARNING,
                )

    @admin.action(description="Pause", permissions=["operate"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._set_paused(request, queryset, paused=True)

    @admin.action(description="Resume", permissions=["operate"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._set_paused(request, queryset, paused=False)

    def _set_paused(self, request: HttpRequest, queryset: QuerySet[Job], *, paused: bool) -> None:
        command = services.job_pause if paused else services.job_resume
        done = []
        for job in queryset:
            try:
                command(name=job.name, requested_by=request.user.get_username())
            except registry.UnknownJob as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            done.append(job.name)
        if done:
            verb = "Paused" if paused else "Resumed"
            self.message_user(
                request,
                f"{verb} {', '.join(done)} on the whole cluster (applied within seconds).",
                messages.SUCCESS,
            )


class JobNameFilter(admin.SimpleListFilter):
    """Job names from the registry: listing the names found in the history would scan all of it."""

    title = "job"
    parameter_name = "job_name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in registry.job_names()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(job_name=value) if value else queryset


class CappedCountPaginator(Paginator):
    """Counts at most ``cap`` rows, so a page of run history never costs a count of the whole table.

    Beyond the cap the pages stop; the filters narrow the history down.
    """

    cap = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[: self.cap].count()  # type: ignore[attr-defined]

    @property
    def capped(self) -> bool:
        return self.count >= self.cap


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdmin):
    list_display = ["job_name", "scheduled_for", "status_badge", "trigger", "duration", "host", "pid"]
    list_filter = [JobNameFilter, "status", "trigger", ("scheduled_for", admin.DateFieldListFilter)]
    search_fields = ["error"]
    search_help_text = "Search the error text (or why the tick was skipped or missed)."
    ordering = ["-scheduled_for", "-id"]
    # date_hierarchy and facets would each count over the whole history.
    date_hierarchy = None
    show_facets = admin.ShowFacets.NEVER
    show_full_result_count = False
    paginator = CappedCountPaginator
    fieldsets = (
        (None, {"fields": ("job_name", "status_badge", "trigger", "requested_by")}),
        (
            "Timing",
            {
                "fields": (
                    "scheduled_for",
                    "created_at",
                    "started_at",
                    "finished_at",
                    "duration",
                    "heartbeat_at",
                )
            },
        ),
        ("Where", {"fields": ("host", "pid", "active")}),
        ("Outcome", {"fields": ("error", "summary_pretty", "traceback_pre")}),
    )
    readonly_fields = ["status_badge", "duration", "summary_pretty", "traceback_pre"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobRun]:
        # Tracebacks are only shown on the detail page, which loads them on access.
        return super().get_queryset(request).defer("traceback")

    @admin.display(description="status", ordering="status")
    def status_badge(self, run: JobRun) -> SafeString:
        return status_badge(run.status)

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, run: JobRun) -> str:
        return human_duration(run.duration_ms)

    @admin.display(description="summary")
    def summary_pretty(self, run: JobRun) -> SafeString | str:
        if not run.summary:
            return "-"
        text = json.dumps(run.summary, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        return format_html("<pre>{}</pre>", text)

    @admin.display(description="traceback")
    def traceback_pre(self, run: JobRun) -> SafeString | str:
        if not run.traceback:
            return "-"
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', run.traceback)


@admin.register(LeaderLease)
class LeaderLeaseAdmin(ReadOnlyAdmin):
    list_display = ["name", "leading", "host", "pid", "backend", "since", "expires_at"]
    fields = ["name", "leading", "holder", "host", "pid", "backend", "since", "expires_at"]
    readonly_fields = ["leading"]

    @admin.display(description="leading now", boolean=True)
    def leading(self, lease: LeaderLease) -> bool:
        # One row per JOB_NAME: a query per row is a query or two.
        current = leases.current_leader(lease.name)
        return current is not None and current.holder == lease.holder

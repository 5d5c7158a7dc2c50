"""Admin of the job catalog: one row per registered job, with run now, pause and resume.

The actions, the dashboard's buttons and the job page's buttons only call the
services, which queue or flag work for the leader; no job ever runs inside an
admin request. The dashboard's views live in :mod:`stayy.admin.dashboard`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from stayy import services
from stayy.admin import dashboard, edits
from stayy.admin.common import ReadOnlyAdmin, status_badge
from stayy.models import Job


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ["name", "schedule", "enabled", "paused", "next_run_at", "last_run"]
    list_filter = ["enabled", "paused"]
    actions = ["run_now", "pause", "resume"]
    fieldsets = (
        (None, {"fields": ("name", "description", "runs", "alerts", "recent_alerts")}),
        ("Schedule", {"fields": ("schedule", "trigger", "next_run_at", "schedule_since")}),
        ("Limits", {"fields": ("timeout", "misfire_grace")}),
        ("Policies", {"fields": ("overlap", "retries", "retry_backoff", "atomic", "jitter", "alert_after")}),
        ("State", {"fields": ("enabled", "paused", "paused_by", "last_run", "updated_at")}),
        ("Live edits (win over JOB_OVERRIDES and the code)", {"fields": ("edits", "edited_by", "edited_at")}),
    )
    readonly_fields = ["runs", "alerts", "recent_alerts", "last_run"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return services.jobs_with_last_run(jobs=super().get_queryset(request))

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

    @admin.display(description="last 20 alerts")
    def recent_alerts(self, job: Job) -> SafeString | str:
        deliveries = services.job_alert_deliveries(name=job.name, limit=20)
        if not deliveries:
            return "none yet"
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:stayy_alertdelivery_change", args=[delivery.pk]),
                    f"{delivery.created_at:%Y-%m-%d %H:%M:%S}",
                    delivery.event,
                    delivery.channel,
                    delivery.status,
                    delivery.attempts,
                    delivery.last_error[:120] or "-",
                )
                for delivery in deliveries
            ),
        )
        return format_html(
            '<table class="job-alerts"><thead><tr><th>created (UTC)</th><th>event</th><th>channel</th>'
            "<th>status</th><th>attempts</th><th>last error</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="alerts")
    def alerts(self, job: Job) -> SafeString:
        url = reverse("admin:stayy_alertdelivery_changelist") + "?" + urlencode({"job_name": job.name})
        return format_html('<a href="{}">Alerts of {}</a>', url, job.name)

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """Run now, pause and resume: for staff who may change jobs (the pages stay read-only)."""
        return request.user.has_perm("stayy.change_job")

    def get_urls(self) -> list[URLPattern]:
        """The dashboard and its commands, before the default ``<object_id>/`` patterns."""

        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(partial(view, self))

        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        custom = [path("dashboard/", wrap(dashboard.dashboard_view), name=f"{prefix}_dashboard")]
        custom += [
            path(
                f"dashboard/{command}/",
                wrap(partial(dashboard.command_view, command=command)),
                name=f"{prefix}_{command.replace('-', '_')}",
            )
            for command in dashboard.COMMANDS
        ]
        custom += [
            path("<path:object_id>/edit/", wrap(edits.edit_view), name=f"{prefix}_edit"),
            path("<path:object_id>/reset/", wrap(edits.reset_view), name=f"{prefix}_reset"),
        ]
        return custom + super().get_urls()

    @admin.action(description="Run now (on the leader)", permissions=["operate"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self.run_now_names(request, [job.name for job in queryset])

    @admin.action(description="Pause", permissions=["operate"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self.pause_names(request, [job.name for job in queryset])

    @admin.action(description="Resume", permissions=["operate"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self.resume_names(request, [job.name for job in queryset])

    # The commands behind the actions, the dashboard's buttons and the job page's buttons.

    def run_now_names(self, request: HttpRequest, names: list[str]) -> None:
        queued = []
        for name in names:
            try:
                run = services.job_request_run(name=name, requested_by=request.user.get_username())
            except services.JobNotFound as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            queued.append(f"{name} (run {run.pk})")
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

    def pause_names(self, request: HttpRequest, names: list[str]) -> None:
        self._set_paused(request, names, paused=True)

    def resume_names(self, request: HttpRequest, names: list[str]) -> None:
        self._set_paused(request, names, paused=False)

    def _set_paused(self, request: HttpRequest, names: list[str], *, paused: bool) -> None:
        command = services.job_pause if paused else services.job_resume
        done = []
        for name in names:
            try:
                command(name=name, requested_by=request.user.get_username())
            except services.JobNotFound as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            done.append(name)
        if done:
            verb = "Paused" if paused else "Resumed"
            self.message_user(
                request,
                f"{verb} {', '.join(done)} on the whole cluster (applied within seconds).",
                messages.SUCCESS,
            )

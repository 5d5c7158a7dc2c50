"""The jobs dashboard: every job at a glance, with run now, pause and resume.

Custom admin views, wired in by :class:`stayy.admin.jobs.JobAdmin` so they use
the admin's login, permissions and look. The page needs the view permission on
jobs; the commands need ``stayy.change_job`` and only call the services (a
queued run or a pause flag for the leader), never the job itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.db.models.options import Options
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString

from stayy import services
from stayy.admin.charts import Bar, runs_chart
from stayy.admin.common import human_duration, status_badge
from stayy.admin.schedule_words import schedule_in_words
from stayy.admin.timeline import timeline_svg
from stayy.models import Job, JobRun

CHART_RUNS = 50

#: The commands of the dashboard and the job page: URL slug → JobAdmin method.
COMMANDS = {"run-now": "run_now_names", "pause": "pause_names", "resume": "resume_names"}

# The admin index links to the dashboard (AdminSite hook: the index template is per site).
admin.site.index_template = "admin/stayy/index.html"


class JobsModelAdmin(Protocol):
    """What the views need of the job catalog's model admin (:class:`stayy.admin.jobs.JobAdmin`,
    which wires them in): its site, its model's options, its permissions, and the methods named
    in :data:`COMMANDS`."""

    admin_site: admin.AdminSite
    opts: Options[Job]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool: ...

    def has_operate_permission(self, request: HttpRequest) -> bool: ...


@dataclass(frozen=True)
class JobRow:
    """What the dashboard shows of one job, ready for the template."""

    job: Job
    change_url: str
    history_url: str
    schedule: str
    last_run: JobRun | None
    last_run_url: str
    last_run_badge: SafeString | str
    last_run_duration: str
    success_rate: str
    p95: str
    chart: SafeString


def run_url(run: JobRun) -> str:
    return reverse("admin:stayy_jobrun_change", args=[run.pk])


def _run_title(run: JobRun) -> str:
    return f"{run.scheduled_for:%Y-%m-%d %H:%M:%S} UTC · {run.status} · {human_duration(run.duration_ms)}"


def job_row(overview: services.JobOverview) -> JobRow:
    job, stats, last = overview.job, overview.stats, overview.last_run
    rate = stats.success_rate
    bars = [
        Bar(status=run.status, duration_ms=run.duration_ms, title=_run_title(run), url=run_url(run))
        for run in reversed(overview.recent_runs)
    ]
    return JobRow(
        job=job,
        change_url=reverse("admin:stayy_job_change", args=[quote(job.name)]),
        history_url=reverse("admin:stayy_jobrun_changelist") + "?" + urlencode({"job_name": job.name}),
        schedule=schedule_in_words(job.trigger),
        last_run=last,
        last_run_url=run_url(last) if last else "",
        last_run_badge=status_badge(last.status) if last else "-",
        last_run_duration=human_duration(last.duration_ms) if last else "-",
        success_rate="-" if rate is None else f"{rate:.0%} of {stats.finished}",
        p95=human_duration(stats.p95_duration_ms),
        chart=runs_chart(bars, slots=CHART_RUNS, label=f"last {len(bars)} runs of {job.name}"),
    )


def dashboard_view(model_admin: JobsModelAdmin, request: HttpRequest) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    dashboard = services.jobs_dashboard(chart_runs=CHART_RUNS)
    hours = dashboard.stats_window.total_seconds() / 3600
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "title": "Jobs dashboard",
        "opts": model_admin.opts,
        "rows": [job_row(overview) for overview in dashboard.jobs],
        "leader": dashboard.leader,
        "lease_backend": dashboard.lease_backend,
        "window": f"{hours:g} h",
        "chart_runs": CHART_RUNS,
        "can_operate": model_admin.has_operate_permission(request),
        "changelist_url": reverse("admin:stayy_job_changelist"),
        "timeline": timeline_svg(dashboard.timeline),
    }
    return render(request, "admin/stayy/job/dashboard.html", context)


def command_view(model_admin: JobsModelAdmin, request: HttpRequest, command: str) -> HttpResponse:
    """Run now, pause or resume the job named in the form; back to where the form was."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if command not in COMMANDS:
        raise PermissionDenied  # only reachable through the URL patterns' fixed slugs
    if not model_admin.has_operate_permission(request):
        raise PermissionDenied
    name = request.POST.get("name", "")
    getattr(model_admin, COMMANDS[command])(request, [name])
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = reverse("admin:stayy_job_dashboard")
    return HttpResponseRedirect(back)

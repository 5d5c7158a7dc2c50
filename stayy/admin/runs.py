"""Admin of the run history: filters, error search, a changelist that never counts the whole table,
and the run detail page (every field, the summary, the traceback and the lines the run logged).

The history can grow to millions of rows, so the changelist's count is capped,
its filters need no query of their own, and it sorts only by scheduled time:
every page is read off one index (see the indexes of :class:`stayy.models.JobRun`).
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import Expression, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from stayy import services
from stayy.admin.common import ReadOnlyAdmin, human_duration, status_badge
from stayy.models import JobRun


class JobNameFilter(admin.SimpleListFilter):
    """Job names from the registry: listing the names found in the history would scan all of it."""

    title = "job"
    parameter_name = "job_name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in services.job_names()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(job_name=value) if value else queryset


class CappedCountPaginator(Paginator):
    """Counts at most ``cap`` rows, so a page of run history never costs a count of the whole table.

    Beyond the cap the pages stop; the filters narrow the history down. The
    count keeps the page's newest-first order, so that PostgreSQL counts the
    first ``cap`` rows off the index that matches the filter (unordered, it
    may scan the table until it has found them).
    """

    cap = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.cap].count()  # type: ignore[attr-defined,index]

    @property
    def capped(self) -> bool:
        return self.count >= self.cap


class SortableByOnlyChangeList(ChangeList):
    """Orders only by the columns of ``sortable_by``, even when a URL asks for another one.

    Django's ``sortable_by`` only hides the header links; ``?o=`` on another column
    would still sort the whole history for one page.
    """

    def get_ordering_field(self, field_name: Any) -> Expression | str | None:
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdmin):
    list_display = ["job_name", "scheduled_for", "status_badge", "trigger", "duration", "host", "pid"]
    list_filter = [JobNameFilter, "status", "trigger", ("scheduled_for", admin.DateFieldListFilter)]
    search_fields = ["error"]
    search_help_text = "Search the error text (or why the tick was skipped or missed)."
    ordering = ["-scheduled_for", "-id"]
    # Other orders (duration, host, ...) would sort the whole history for one page.
    sortable_by = ["scheduled_for"]
    # date_hierarchy and facets would each count over the whole history.
    date_hierarchy = None
    show_facets = admin.ShowFacets.NEVER
    show_full_result_count = False
    paginator = CappedCountPaginator

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return SortableByOnlyChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[JobRun], search_term: str
    ) -> tuple[QuerySet[JobRun], bool]:
        # A term matches no empty error text; saying so lets PostgreSQL use the trigram
        # index, which covers only runs with an error (stayy migration 0004).
        if search_term.strip():
            queryset = queryset.exclude(error="")
        return super().get_search_results(request, queryset, search_term)

    fieldsets = (
        (None, {"fields": ("id", "job_link", "status_badge", "trigger", "requested_by")}),
        ("Retries", {"fields": ("attempt", "retry_of", "not_before")}),
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
        ("Where", {"fields": ("host", "pid", "active", "forced")}),
        ("Outcome", {"fields": ("error", "summary_pretty", "traceback_pre")}),
        ("Log", {"fields": ("log_pre",)}),
    )
    readonly_fields = [
        "id",
        "job_link",
        "status_badge",
        "duration",
        "summary_pretty",
        "traceback_pre",
        "log_pre",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobRun]:
        # Tracebacks and logs are only shown on the detail page, which loads them on access.
        return super().get_queryset(request).defer("traceback", "log")

    @admin.display(description="job")
    def job_link(self, run: JobRun) -> SafeString:
        url = reverse("admin:stayy_jobrun_changelist") + "?" + urlencode({"job_name": run.job_name})
        return format_html('{} (<a href="{}">all its runs</a>)', run.job_name, url)

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

    @admin.display(description="logged lines")
    def log_pre(self, run: JobRun) -> SafeString | str:
        if not run.log:
            return "-"
        return format_html('<pre class="stayy-run-log" style="white-space:pre-wrap">{}</pre>', run.log)

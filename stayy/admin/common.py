"""Shared pieces of the job runtime's admin pages: status badges, durations, read-only base."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from stayy.models import JobRun

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

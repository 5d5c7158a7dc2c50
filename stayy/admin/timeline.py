"""The last hour of every job as one inline SVG timeline, drawn on the server (no JavaScript, no assets).

One row per job; each run is a bar from its start to its end (a running one to
now), coloured by its status, at least one pixel wide, with its host, pid,
duration and status in its tooltip, and a link to the run. Runs of every host
are drawn; a dashed line across all rows marks each leader change, with the
new leader in its tooltip. The axis is labelled every ten minutes (UTC).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from stayy.admin.common import STATUS_COLOURS, human_duration
from stayy.models import JobRun
from stayy.services import JobsTimeline

LABEL_WIDTH = 220
TRACK_WIDTH = 720
ROW_HEIGHT = 18
BAR_HEIGHT = 12
AXIS_HEIGHT = 18
FALLBACK_COLOUR = "#757575"


def _x(at: datetime, timeline: JobsTimeline) -> float:
    span = (timeline.end - timeline.start).total_seconds()
    offset = (min(max(at, timeline.start), timeline.end) - timeline.start).total_seconds()
    return LABEL_WIDTH + TRACK_WIDTH * offset / span


def _bar(run: JobRun, row: int, timeline: JobsTimeline) -> tuple[object, ...]:
    assert run.started_at is not None
    left = _x(run.started_at, timeline)
    right = _x(run.finished_at or timeline.end, timeline)
    title = (
        f"{run.job_name} run {run.pk}: {run.status}, {human_duration(run.duration_ms)}, "
        f"host {run.host} pid {run.pid}, started {run.started_at:%H:%M:%S} UTC"
    )
    return (
        reverse("admin:stayy_jobrun_change", args=[run.pk]),
        run.status,
        run.host,
        run.pid,
        f"{left:.1f}",
        AXIS_HEIGHT + row * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2,
        f"{max(1.0, right - left):.1f}",
        BAR_HEIGHT,
        STATUS_COLOURS.get(run.status, FALLBACK_COLOUR),  # type: ignore[call-overload]
        title,
    )


def _axis(timeline: JobsTimeline) -> SafeString:
    first = timeline.start.replace(second=0, microsecond=0)
    first += timedelta(minutes=(10 - first.minute % 10) % 10)
    marks = []
    at = first
    while at <= timeline.end:
        marks.append((f"{_x(at, timeline):.1f}", f"{at:%H:%M}"))
        at += timedelta(minutes=10)
    return format_html_join(
        "", '<text class="axis" x="{}" y="12" font-size="10" text-anchor="middle">{}</text>', marks
    )


def timeline_svg(timeline: JobsTimeline) -> SafeString:
    """The ``<svg>`` of ``timeline``: a row per job (in the order given), bars, leader changes, axis."""
    names = list(timeline.runs)
    height = AXIS_HEIGHT + ROW_HEIGHT * len(names)
    width = LABEL_WIDTH + TRACK_WIDTH
    labels = format_html_join(
        "",
        '<text class="job-label" x="4" y="{}" font-size="11">{}</text>',
        ((AXIS_HEIGHT + row * ROW_HEIGHT + 13, name) for row, name in enumerate(names)),
    )
    bars = format_html_join(
        "",
        '<a href="{}"><rect class="timeline-run" data-status="{}" data-host="{}" data-pid="{}" x="{}" y="{}" '
        'width="{}" height="{}" fill="{}"><title>{}</title></rect></a>',
        (_bar(run, row, timeline) for row, name in enumerate(names) for run in timeline.runs[name]),
    )
    changes = format_html_join(
        "",
        '<line class="leader-change" x1="{}" y1="{}" x2="{}" y2="{}" stroke="#6a1b9a" stroke-dasharray="3,2">'
        "<title>leader: {} pid {} from {} UTC</title></line>",
        (
            (x, AXIS_HEIGHT, x, height, change.host, change.pid, f"{change.at:%H:%M:%S}")
            for change in timeline.leader_changes
            for x in [f"{_x(change.at, timeline):.1f}"]
        ),
    )
    return format_html(
        '<svg class="jobs-timeline" xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" '
        'viewBox="0 0 {} {}" role="img" aria-label="runs of the last hour, one row per job">'
        '<rect x="{}" y="{}" width="{}" height="{}" fill="#fafafa"/>{}{}{}{}</svg>',
        width,
        height,
        width,
        height,
        LABEL_WIDTH,
        AXIS_HEIGHT,
        TRACK_WIDTH,
        height - AXIS_HEIGHT,
        _axis(timeline),
        labels,
        bars,
        changes,
    )

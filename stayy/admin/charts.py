"""A job's recent runs as a small inline SVG bar chart, drawn on the server (no JavaScript, no CDN).

One bar per run, oldest on the left: its height is the run's duration
(relative to the longest run shown), its colour the run's status. Runs
without a duration (skipped, missed, still running) get a stub bar. Each bar
links to the run and has a tooltip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from stayy.admin.common import STATUS_COLOURS

BAR_WIDTH = 5
BAR_GAP = 1
CHART_HEIGHT = 40
STUB_HEIGHT = 2
FALLBACK_COLOUR = "#757575"


@dataclass(frozen=True)
class Bar:
    """One run in the chart."""

    status: str
    duration_ms: int | None
    title: str
    url: str


def bar_height(duration_ms: int | None, longest_ms: int) -> int:
    """Pixels for a run: proportional to its duration, never below the stub height."""
    if not duration_ms or longest_ms <= 0:
        return STUB_HEIGHT
    return max(STUB_HEIGHT, round(CHART_HEIGHT * duration_ms / longest_ms))


def runs_chart(bars: Sequence[Bar], *, slots: int = 50, label: str = "recent runs") -> SafeString:
    """An ``<svg>`` with one bar per run, oldest first, room for ``slots`` bars."""
    shown = list(bars)[-slots:]
    longest = max((bar.duration_ms or 0 for bar in shown), default=0)
    width = slots * (BAR_WIDTH + BAR_GAP)
    rects = format_html_join(
        "",
        '<a href="{}"><rect class="run-bar" data-status="{}" x="{}" y="{}" width="{}" height="{}" fill="{}">'
        "<title>{}</title></rect></a>",
        (
            (
                bar.url,
                bar.status,
                index * (BAR_WIDTH + BAR_GAP),
                CHART_HEIGHT - bar_height(bar.duration_ms, longest),
                BAR_WIDTH,
                bar_height(bar.duration_ms, longest),
                STATUS_COLOURS.get(bar.status, FALLBACK_COLOUR),  # type: ignore[call-overload]
                bar.title,
            )
            for index, bar in enumerate(shown)
        ),
    )
    return format_html(
        '<svg class="runs-chart" xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" '
        'viewBox="0 0 {} {}" role="img" aria-label="{}">'
        '<line x1="0" y1="{}" x2="{}" y2="{}" stroke="#ccc" stroke-width="1"/>{}</svg>',
        width,
        CHART_HEIGHT,
        width,
        CHART_HEIGHT,
        label,
        CHART_HEIGHT - 0.5,
        width,
        CHART_HEIGHT - 0.5,
        rects,
    )

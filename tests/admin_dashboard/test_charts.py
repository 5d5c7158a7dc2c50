"""The recent-runs chart: one SVG bar per run, height = duration, colour = status."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from stayy.admin.charts import CHART_HEIGHT, STUB_HEIGHT, Bar, bar_height, runs_chart
from stayy.admin.common import STATUS_COLOURS

SVG = "{http://www.w3.org/2000/svg}"


def rects(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)  # well-formed XML, as inline SVG must be
    assert root.tag == f"{SVG}svg"
    return list(root.iter(f"{SVG}rect"))


def bar(status: str = "succeeded", duration_ms: int | None = 1000, n: int = 1) -> Bar:
    return Bar(status=status, duration_ms=duration_ms, title=f"run {n}", url=f"/runs/{n}/")


def test_one_bar_per_run_oldest_left_height_by_duration_colour_by_status():
    svg = runs_chart(
        [bar("succeeded", 1000, 1), bar("failed", 500, 2), bar("timed_out", 250, 3), bar("succeeded", 100, 4)]
    )
    bars = rects(svg)
    assert [b.get("data-status") for b in bars] == ["succeeded", "failed", "timed_out", "succeeded"]
    assert [int(b.get("height")) for b in bars] == [40, 20, 10, 4]
    # Bars stand on the baseline: y + height is the chart's height.
    assert all(int(b.get("y")) + int(b.get("height")) == CHART_HEIGHT for b in bars)
    assert [b.get("fill") for b in bars] == ["#2e7d32", "#c62828", "#ef6c00", "#2e7d32"]
    xs = [int(b.get("x")) for b in bars]
    assert xs == sorted(xs) and len(set(xs)) == 4
    assert [b.find(f"{SVG}title").text for b in bars] == ["run 1", "run 2", "run 3", "run 4"]


def test_every_status_has_its_colour():
    for status, colour in STATUS_COLOURS.items():
        (only,) = rects(runs_chart([bar(str(status))]))
        assert only.get("fill") == colour


def test_runs_without_duration_get_a_stub_bar():
    bars = rects(
        runs_chart([bar("missed", None), bar("skipped", 0), bar("running", None), bar("succeeded", 10)])
    )
    assert [int(b.get("height")) for b in bars] == [STUB_HEIGHT, STUB_HEIGHT, STUB_HEIGHT, CHART_HEIGHT]
    assert [b.get("fill") for b in bars[:2]] == ["#757575", "#757575"]
    assert bar_height(None, 0) == STUB_HEIGHT
    assert bar_height(1, 10_000) == STUB_HEIGHT  # a very short run stays visible


def test_bars_link_to_their_runs_and_escape_their_text():
    svg = runs_chart([Bar(status="failed", duration_ms=5, title='<b>"x"</b> & y', url="/runs/7/?a=1&b=2")])
    assert "<b>" not in svg
    root = ET.fromstring(svg)
    link = root.find(f"{SVG}a")
    assert link is not None and link.get("href") == "/runs/7/?a=1&b=2"
    assert link.find(f"{SVG}rect/{SVG}title").text == '<b>"x"</b> & y'


def test_only_the_newest_runs_fit_and_the_width_is_fixed():
    many = [bar(duration_ms=n + 1, n=n) for n in range(80)]
    svg = runs_chart(many, slots=50)
    bars = rects(svg)
    assert len(bars) == 50
    assert bars[0].find(f"{SVG}title").text == "run 30"  # the 30 oldest are left out
    assert ET.fromstring(svg).get("width") == ET.fromstring(runs_chart([], slots=50)).get("width")


def test_empty_chart_is_valid_svg_without_bars():
    svg = runs_chart([], label="last 0 runs of a.b")
    assert rects(svg) == []
    assert re.search(r'aria-label="last 0 runs of a.b"', svg)

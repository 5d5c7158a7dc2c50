"""The jobs dashboard page: leader, one row per job, schedule words, stats, the runs chart, links."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from django.contrib.admin.utils import quote
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from stayy.models import Job, JobRun
from tests.admin_dashboard.conftest import PURGE, STATS, SYNC

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("admin:stayy_job_dashboard")
SVG = "{http://www.w3.org/2000/svg}"


def row_html(content: str, job_name: str) -> str:
    match = re.search(rf'<tr class="job-row" data-job="{re.escape(job_name)}">(.*?)</tr>', content, re.S)
    assert match, f"no dashboard row for {job_name}"
    return match.group(1)


def cell(row: str, name: str) -> str:
    match = re.search(rf'<td class="{name}"[^>]*>(.*?)</td>', row, re.S)
    assert match, f"no {name} cell"
    return match.group(1)


def chart_bars(row: str) -> list[ET.Element]:
    svg = re.search(r"<svg class=\"runs-chart\".*?</svg>", row, re.S)
    assert svg
    return list(ET.fromstring(svg.group(0)).iter(f"{SVG}rect"))


def test_one_row_per_registered_job_with_schedule_in_words(superuser_client):
    response = superuser_client.get(DASHBOARD)
    assert response.status_code == 200
    content = response.content.decode()
    assert re.findall(r'data-job="([^"]+)"', content) == [PURGE, STATS, SYNC]
    assert cell(row_html(content, PURGE), "schedule") == "daily at 03:17 UTC"
    assert cell(row_html(content, STATS), "schedule") == "every 30 seconds"
    assert cell(row_html(content, SYNC), "schedule") == "every 5 minutes"
    # Each job links to its page and its run history.
    assert reverse("admin:stayy_job_change", args=[quote(PURGE)]) in content
    assert f"/admin/stayy/jobrun/?job_name={PURGE}" in content


def test_state_next_run_and_last_run(superuser_client, make_run):
    Job.objects.all().delete()
    superuser_client.get(DASHBOARD)  # writes the catalog rows
    Job.objects.filter(name=STATS).update(paused=True, paused_by="alice")
    Job.objects.filter(name=SYNC).update(enabled=False)
    next_run = timezone.now() + timedelta(hours=2)
    Job.objects.filter(name=PURGE).update(next_run_at=next_run)
    make_run(ago=120, duration_ms=900)
    last = make_run(ago=60, status="failed", duration_ms=90_000, error="boom")
    make_run(ago=1, status="queued", trigger="manual", duration_ms=None, started_at=None)

    content = superuser_client.get(DASHBOARD).content.decode()

    purge = row_html(content, PURGE)
    assert "active" in cell(purge, "state")
    assert next_run.strftime("%Y-%m-%d %H:%M") in cell(purge, "next-run")
    assert f'data-run-id="{last.pk}" data-status="failed"' in purge  # the queued request is not a run yet
    last_cell = cell(purge, "last-run")
    assert reverse("admin:stayy_jobrun_change", args=[last.pk]) in last_cell
    assert "#c62828" in last_cell and "1.5 min" in last_cell and "ago" in last_cell
    stats = row_html(content, STATS)
    assert "paused" in cell(stats, "state") and "by alice" in cell(stats, "state")
    assert cell(stats, "next-run") == "-"
    assert "disabled" in cell(row_html(content, SYNC), "state")


def test_success_rate_p95_and_chart(superuser_client, make_run):
    durations = [400, 800, 200, 100]  # oldest first
    statuses = ["succeeded", "failed", "timed_out", "succeeded"]
    runs = [
        make_run(ago=60 * (4 - i), duration_ms=d, status=s)
        for i, (d, s) in enumerate(zip(durations, statuses, strict=True))
    ]
    make_run(ago=10, status="skipped", duration_ms=None, error="still running elsewhere")
    make_run(ago=30 * 3600, duration_ms=60_000)  # older than the stats window, still in the chart

    content = superuser_client.get(DASHBOARD).content.decode()
    purge = row_html(content, PURGE)

    assert cell(purge, "success-rate") == "50% of 4"
    assert cell(purge, "p95") == "800 ms"
    bars = chart_bars(purge)
    assert [b.get("data-status") for b in bars] == ["succeeded", *statuses, "skipped"]
    assert [b.get("fill") for b in bars] == ["#2e7d32", "#2e7d32", "#c62828", "#ef6c00", "#2e7d32", "#757575"]
    # Heights follow the durations, relative to the longest run shown (60 s -> 40 px).
    assert [int(b.get("height")) for b in bars] == [40, 2, 2, 2, 2, 2]
    links = re.findall(r'<a href="(/admin/stayy/jobrun/\d+/change/)"><rect', purge)
    assert links[-2] == reverse("admin:stayy_jobrun_change", args=[runs[-1].pk])

    # Without the one long run, the short ones fill the height in proportion.
    JobRun.objects.filter(duration_ms=60_000).delete()
    bars = chart_bars(row_html(superuser_client.get(DASHBOARD).content.decode(), PURGE))
    assert [int(b.get("height")) for b in bars] == [20, 40, 10, 5, 2]

    assert chart_bars(row_html(content, STATS)) == []
    assert cell(row_html(content, STATS), "success-rate") == "-"


def test_chart_shows_the_last_fifty_runs(superuser_client, make_run):
    for i in range(60):
        make_run(ago=60 * (i + 1), duration_ms=1000 + i)
    bars = chart_bars(row_html(superuser_client.get(DASHBOARD).content.decode(), PURGE))
    assert len(bars) == 50


def test_leader_and_lease_backend_at_the_top(superuser_client, leader_row):
    content = superuser_client.get(DASHBOARD).content.decode()
    assert "No leader right now" in content
    assert 'class="lease-backend">redis<' in content  # this pass runs with REDIS_URL

    leader_row()
    content = superuser_client.get(DASHBOARD).content.decode()
    top = content[content.index('id="jobs-leader"') : content.index('id="jobs-dashboard"')]
    assert "jobs-host-7" in top and "31337" in top and "since" in top and "5\xa0minutes" in top
    assert "No leader" not in content


@pytest.mark.sqlite
def test_the_page_on_the_sqlite_default(superuser_client, make_run):
    for i, duration in enumerate([300, 100, 200, 400]):
        make_run(ago=60 * (i + 1), duration_ms=duration, status="failed" if i == 0 else "succeeded")
    content = superuser_client.get(DASHBOARD).content.decode()
    assert 'class="lease-backend">database<' in content  # no REDIS_URL: the lease is a database row
    purge = row_html(content, PURGE)
    assert cell(purge, "success-rate") == "75% of 4"
    assert cell(purge, "p95") == "400 ms"
    assert [int(b.get("height")) for b in chart_bars(purge)] == [40, 20, 10, 30]


def test_admin_index_job_list_and_job_page_link_to_the_dashboard(superuser_client):
    for url in (
        reverse("admin:index"),
        reverse("admin:app_list", args=["stayy"]),
        reverse("admin:stayy_job_changelist"),
        reverse("admin:stayy_job_change", args=[quote(PURGE)]),
    ):
        response = superuser_client.get(url)
        assert response.status_code == 200, url
        assert f'href="{DASHBOARD}"' in response.content.decode(), url


def page_queries(client) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(DASHBOARD)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_the_page_needs_the_same_queries_however_long_the_history(superuser_client, make_run):
    page_queries(superuser_client)  # the first look writes the catalog rows
    few = page_queries(superuser_client)
    for name in (PURGE, STATS, SYNC):
        for i in range(150):
            make_run(ago=45 * (i + 1), job_name=name, status="failed" if i % 5 == 0 else "succeeded")
    assert page_queries(superuser_client) == few

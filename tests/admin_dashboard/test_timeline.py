"""The dashboard's timeline of the last hour: a row per job, a bar per run from every host, leader changes."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from stayy import services
from stayy.admin.timeline import LABEL_WIDTH, TRACK_WIDTH, timeline_svg
from tests.admin_dashboard.conftest import PURGE, STATS

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("admin:stayy_job_dashboard")


def bars(svg: str) -> list[dict[str, str]]:
    found = re.findall(r"<rect class=\"timeline-run\"([^>]*)><title>([^<]*)</title>", svg)
    return [{**dict(re.findall(r'(\w[\w-]*)="([^"]*)"', attrs)), "title": title} for attrs, title in found]


def test_every_run_of_the_hour_from_every_host_is_a_bar_with_its_host_pid_and_duration(make_run):
    make_run(ago=3000, host="web-1", pid=11, duration_ms=60_000)
    make_run(ago=1200, host="web-2", pid=22, duration_ms=3_000, status="failed")
    make_run(ago=30, job_name=STATS, host="web-2", pid=22, duration_ms=None, status="running")
    make_run(ago=4000, host="web-1", pid=11)  # over an hour ago: not drawn

    svg = str(timeline_svg(services.jobs_timeline()))

    drawn = bars(svg)
    # Row by row (the jobs by name), each row's runs oldest first.
    assert [(b["data-host"], b["data-pid"], b["data-status"]) for b in drawn] == [
        ("web-1", "11", "succeeded"),
        ("web-2", "22", "failed"),
        ("web-2", "22", "running"),
    ]
    long_run = next(b for b in drawn if b["data-status"] == "succeeded")
    # A minute of an hour: a sixtieth of the track.
    assert float(long_run["width"]) == pytest.approx(TRACK_WIDTH / 60, abs=0.2)
    assert float(long_run["x"]) == pytest.approx(LABEL_WIDTH + TRACK_WIDTH * (600 / 3600), abs=1)
    assert "host web-1 pid 11" in long_run["title"] and "1 min" in long_run["title"]
    assert ", 3 s," in next(b for b in drawn if b["data-status"] == "failed")["title"]
    assert f">{PURGE}</text>" in svg and f">{STATS}</text>" in svg
    assert "<script" not in svg and 'href="http' not in svg


def test_a_new_host_and_pid_among_the_leaders_runs_is_marked_as_a_leader_change(make_run):
    make_run(ago=1800, host="web-1", pid=11)
    make_run(ago=1700, host="web-1", pid=11, job_name=STATS)
    make_run(ago=900, host="web-3", pid=33)
    make_run(ago=800, host="laptop", pid=99, trigger="command")  # runjobs --run: not the leader
    make_run(ago=600, host="web-3", pid=33, job_name=STATS)

    timeline = services.jobs_timeline()
    svg = str(timeline_svg(timeline))

    assert [(c.host, c.pid) for c in timeline.leader_changes] == [("web-3", 33)]
    (marker,) = re.findall(r'<line class="leader-change"[^>]*><title>([^<]*)</title>', svg)
    assert marker.startswith("leader: web-3 pid 33 from ")


def test_the_dashboard_shows_the_timeline(superuser_client, make_run):
    make_run(ago=120, host="web-9", pid=99)

    page = superuser_client.get(DASHBOARD).content.decode()

    assert 'id="jobs-timeline"' in page
    assert 'data-host="web-9"' in page
    before = timezone.now() - timedelta(hours=1)
    assert f"{before:%H}:" in page or f"{timezone.now():%H}:" in page  # the axis is labelled in time

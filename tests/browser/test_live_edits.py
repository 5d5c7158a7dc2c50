"""Editing a job's schedule in a real browser: the form, its preview, the runs that follow, and a reset.

The quick job is declared for 29 February only. Edited to every 2 seconds, the
leader (a real gunicorn with the job server) starts running it on that grid
within seconds; reset, it goes back to its declaration and stops.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.contrib.admin.utils import quote
from playwright.sync_api import expect

from stayy.models import Job, JobRun
from tests.browser.conftest import in_thread
from tests.browser.test_dashboard import LEADER_TIMEOUT, OK_JOB, log_in
from tests.observability.support import Gunicorn
from tests.support import wait_until


def scheduled_runs() -> list[JobRun]:
    return list(JobRun.objects.filter(job_name=OK_JOB, trigger="schedule", status="succeeded"))


def test_edit_a_schedule_see_the_runs_follow_it_then_reset_it(
    job_server: Gunicorn, admin_login: tuple[str, str], browser_page: Any, artifacts: Path
) -> None:
    page = browser_page
    log_in(page, job_server, admin_login)
    wait_until(
        lambda: in_thread(lambda: Job.objects.filter(name=OK_JOB, schedule_since__isnull=False).exists()),
        timeout=LEADER_TIMEOUT,
        interval=0.5,
        message="no leader scheduled the jobs",
    )
    page.goto(f"{job_server.url}/admin/stayy/job/{quote(OK_JOB)}/change/")
    page.click('[data-command="edit"]')

    page.fill("#id_cron", "")
    page.fill("#id_interval", "2")
    page.click('input[name="_preview"]')
    expect(page.locator('[data-preview="schedule"]')).to_have_text("every 2 seconds")
    expect(page.locator('[data-preview="fire-times"] li')).to_have_count(5)
    page.screenshot(path=str(artifacts / "edit-preview.png"), full_page=True)
    assert in_thread(lambda: Job.objects.get(name=OK_JOB).edits) == {}, "the preview saved the edit"

    page.click('input[name="_save"]')
    expect(page.locator(".messagelist")).to_contain_text("the leader applies it within seconds")
    runs = wait_until(
        lambda: len(in_thread(scheduled_runs)) >= 2 or None,
        timeout=30,
        interval=0.5,
        message="no scheduled runs after the edit",
    )
    assert runs
    ticks = [run.scheduled_for for run in in_thread(scheduled_runs)]
    assert all(tick.timestamp() % 2 == 0 for tick in ticks), ticks
    page.goto(f"{job_server.url}/admin/stayy/jobrun/?job_name={OK_JOB}")
    expect(page.locator("#result_list")).to_contain_text("schedule")
    page.screenshot(path=str(artifacts / "edit-runs.png"), full_page=True)

    page.goto(f"{job_server.url}/admin/stayy/job/{quote(OK_JOB)}/edit/")
    page.click('[data-command="reset"]')
    expect(page.locator(".messagelist")).to_contain_text("Reset")
    assert in_thread(lambda: Job.objects.get(name=OK_JOB).edits) == {}
    time.sleep(2)  # the leader applies the reset within a second; a tick in flight may finish
    settled = len(in_thread(scheduled_runs))
    time.sleep(5)
    assert len(in_thread(scheduled_runs)) == settled, "runs went on after the reset"
    page.goto(f"{job_server.url}/admin/stayy/job/{quote(OK_JOB)}/history/")
    expect(page.locator("#change-history")).to_contain_text("Reset interval=2")
    page.screenshot(path=str(artifacts / "edit-history.png"), full_page=True)

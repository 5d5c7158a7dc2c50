"""The jobs dashboard in a real browser: Chromium, a real gunicorn with the job server, PostgreSQL.

Log in, open the dashboard from the admin index, see the jobs and their
charts, run a job now and watch its run succeed, pause and resume a job,
and read the traceback of a run that failed for real. Screenshots of each
step go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from stayy.models import Job, JobRun
from tests.browser.conftest import in_thread
from tests.browser.jobapp import FAILURE_MESSAGE
from tests.observability.support import Gunicorn
from tests.support import wait_until

OK_JOB = "testing.browser_ok"
FAIL_JOB = "testing.browser_fail"
# The leader takes the lease at once, or within a lease TTL (5 s here) of a previous holder;
# it applies run-now requests within about a second. Generous: the machine may be busy.
LEADER_TIMEOUT = 60
RUN_TIMEOUT = 60


def row(page: Any, job_name: str) -> Any:
    return page.locator(f'tr.job-row[data-job="{job_name}"]')


def reload_until(page: Any, selector: str, *, timeout: float, message: str) -> None:
    """Reload the (server-rendered) page until ``selector`` matches something."""

    def present() -> bool:
        page.reload()
        return page.locator(selector).count() > 0

    wait_until(present, timeout=timeout, interval=0.5, message=message)


def seed_history() -> None:
    """Forty earlier runs of the quick job, so the chart has bars of every height and colour."""
    from django.utils import timezone

    now = timezone.now()
    for i in range(40):
        scheduled = now - timedelta(minutes=40 - i)
        status = "failed" if i % 9 == 4 else "timed_out" if i == 20 else "succeeded"
        duration = 200 + (i % 10) * 150
        JobRun.objects.create(
            job_name=OK_JOB,
            scheduled_for=scheduled,
            trigger="manual",
            status=status,
            started_at=scheduled,
            finished_at=scheduled + timedelta(milliseconds=duration),
            duration_ms=duration,
            host="earlier-host",
            pid=1,
        )


def log_in(page: Any, server: Gunicorn, login: tuple[str, str]) -> None:
    page.goto(server.url + "/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.fill("#id_username", login[0])
    page.fill("#id_password", login[1])
    page.click("input[type=submit]")
    expect(page.locator("#jobs-dashboard-link")).to_be_visible()


def open_dashboard(page: Any, artifacts: Path) -> None:
    page.click("#jobs-dashboard-link caption a")
    expect(page).to_have_url(re.compile(r"/admin/stayy/job/dashboard/$"))
    reload_until(page, "#jobs-leader .leader-host", timeout=LEADER_TIMEOUT, message="no leader shown")


def queued_run_id(page: Any, job_name: str) -> int:
    message = page.locator(".messagelist .success").first.inner_text()
    match = re.search(rf"Queued {re.escape(job_name)} \(run (\d+)\)", message)
    assert match, message
    return int(match.group(1))


def test_dashboard_shows_jobs_and_charts_and_runs_now_pauses_and_resumes(
    job_server: Gunicorn, admin_login: tuple[str, str], artifacts: Path, browser_page: Any
) -> None:
    page = browser_page
    in_thread(seed_history)
    log_in(page, job_server, admin_login)
    page.screenshot(path=artifacts / "01-admin-index.png", full_page=True)
    open_dashboard(page, artifacts)

    # The leader and the lease backend are at the top: this gunicorn's one worker leads, in Redis.
    leader = page.locator("#jobs-leader")
    expect(leader).to_contain_text("since")
    assert page.locator(".leader-pid").inner_text().isdigit()
    expect(page.locator(".lease-backend")).to_have_text(re.compile(r"^(redis|database)$"))

    # One row per registered job, schedules in words.
    names = page.locator("tr.job-row").evaluate_all("rows => rows.map(r => r.dataset.job)")
    assert {OK_JOB, FAIL_JOB, "stayy.purge_job_runs", "users.refresh_user_stats"} <= set(names)
    expect(row(page, OK_JOB).locator(".schedule")).to_have_text(
        "at 04:15, on day 29 of the month, only in February (UTC)"
    )
    expect(row(page, FAIL_JOB).locator(".schedule")).to_have_text(
        "at 03:00, on day 29 of the month, only in February (Europe/Berlin)"
    )
    expect(row(page, "users.refresh_user_stats").locator(".schedule")).to_have_text("every 30 seconds")
    expect(row(page, "stayy.purge_job_runs").locator(".schedule")).to_have_text("daily at 03:17 UTC")

    # The chart: one bar per earlier run, coloured by status, heights by duration.
    bars = row(page, OK_JOB).locator("svg.runs-chart rect.run-bar")
    expect(bars).to_have_count(40)
    fills = {bars.nth(i).get_attribute("fill") for i in range(40)}
    assert fills == {"#2e7d32", "#c62828", "#ef6c00"}
    heights = [int(bars.nth(i).get_attribute("height") or 0) for i in range(40)]
    assert max(heights) == 40 and min(heights) < 10
    expect(row(page, OK_JOB).locator(".success-rate")).to_contain_text("of 40")
    page.screenshot(path=artifacts / "02-dashboard.png", full_page=True)

    # Run now: queued by the request, executed by the leader, shown as succeeded.
    row(page, OK_JOB).locator('button[data-command="run-now"]').click()
    run_id = queued_run_id(page, OK_JOB)
    reload_until(
        page,
        f'tr[data-job="{OK_JOB}"] td.last-run[data-run-id="{run_id}"][data-status="succeeded"]',
        timeout=RUN_TIMEOUT,
        message=f"run {run_id} of {OK_JOB} not shown as succeeded",
    )
    expect(row(page, OK_JOB).locator("svg.runs-chart rect.run-bar")).to_have_count(41)
    newest = row(page, OK_JOB).locator("svg.runs-chart rect.run-bar").last
    expect(newest).to_have_attribute("data-status", "succeeded")
    run = in_thread(lambda: JobRun.objects.get(pk=run_id))
    assert (run.status, run.trigger, run.requested_by) == ("succeeded", "manual", admin_login[0])
    assert run.pid != 0 and run.host  # executed by the job server, not in the request
    page.screenshot(path=artifacts / "03-run-now-succeeded.png", full_page=True)

    # Pause from the dashboard.
    row(page, OK_JOB).locator('button[data-command="pause"]').click()
    expect(page.locator(".messagelist")).to_contain_text(f"Paused {OK_JOB} on the whole cluster")
    expect(row(page, OK_JOB).locator(".state")).to_contain_text(f"paused by {admin_login[0]}")
    expect(row(page, OK_JOB).locator('button[data-command="resume"]')).to_be_visible()
    assert in_thread(lambda: Job.objects.get(name=OK_JOB).paused) is True
    page.screenshot(path=artifacts / "04-paused.png", full_page=True)

    # Resume from the job's own page.
    row(page, OK_JOB).locator("th a").first.click()
    expect(page.locator("h1, h2").filter(has_text=OK_JOB).first).to_be_visible()
    page.locator('.job-page-commands button[data-command="resume"]').click()
    expect(page.locator(".messagelist")).to_contain_text(f"Resumed {OK_JOB} on the whole cluster")
    expect(page.locator('.job-page-commands button[data-command="pause"]')).to_be_visible()
    assert in_thread(lambda: Job.objects.get(name=OK_JOB).paused) is False
    page.screenshot(path=artifacts / "05-resumed-on-job-page.png", full_page=True)
    page.click("text=Jobs dashboard")
    expect(row(page, OK_JOB).locator(".state")).to_have_text("active")


def test_a_failed_run_shows_its_traceback(
    job_server: Gunicorn, admin_login: tuple[str, str], artifacts: Path, browser_page: Any
) -> None:
    page = browser_page
    log_in(page, job_server, admin_login)
    open_dashboard(page, artifacts)

    row(page, FAIL_JOB).locator('button[data-command="run-now"]').click()
    run_id = queued_run_id(page, FAIL_JOB)
    reload_until(
        page,
        f'tr[data-job="{FAIL_JOB}"] td.last-run[data-run-id="{run_id}"][data-status="failed"]',
        timeout=RUN_TIMEOUT,
        message=f"run {run_id} of {FAIL_JOB} not shown as failed",
    )
    expect(row(page, FAIL_JOB).locator(".success-rate")).to_have_text("0% of 1")
    bar = row(page, FAIL_JOB).locator("svg.runs-chart rect.run-bar")
    expect(bar).to_have_count(1)
    expect(bar).to_have_attribute("fill", "#c62828")
    page.screenshot(path=artifacts / "06-failed-run-on-dashboard.png", full_page=True)

    row(page, FAIL_JOB).locator("td.last-run a").click()
    expect(page).to_have_url(re.compile(rf"/admin/stayy/jobrun/{run_id}/change/"))
    content = page.locator("#content")
    expect(content).to_contain_text("Traceback (most recent call last)")
    expect(content).to_contain_text(f"ConnectionError: {FAILURE_MESSAGE}")
    expect(content).to_contain_text("_call_upstream")
    page.screenshot(path=artifacts / "07-failed-run-traceback.png", full_page=True)

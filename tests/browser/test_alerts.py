"""A failed run's alert in a real browser: run the failing job now, and its job page lists the alert.

A real gunicorn with the job server sends the alert to a webhook receiver of the
test's own (a real HTTP server); the job's admin page shows the delivery.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from playwright.sync_api import expect

from tests.alerts.conftest import SECRET, Receiver, receiver  # noqa: F401  (the receiver fixture)
from tests.browser.conftest import browser_server_env
from tests.browser.test_dashboard import FAIL_JOB, LEADER_TIMEOUT, RUN_TIMEOUT, log_in
from tests.observability.support import Gunicorn, gunicorn
from tests.support import wait_until


@pytest.fixture
def alerting_server(transactional_db: None, tmp_path: Path, receiver: Receiver) -> Iterator[Gunicorn]:  # noqa: F811
    """The browser tests' gunicorn with its alerts going to ``receiver``."""
    env = browser_server_env(JOB_ALERT_WEBHOOK_URL=receiver.url, JOB_ALERT_WEBHOOK_SECRET=SECRET)
    with gunicorn(env=env, log_path=tmp_path / "gunicorn.log") as server:
        yield server


def alerts_of(receiver: Receiver, job: str) -> list[dict[str, Any]]:  # noqa: F811
    bodies = [json.loads(request.body) for request in list(receiver.requests)]
    return [body for body in bodies if body.get("job") == job]


def test_a_failed_run_raises_an_alert_that_its_job_page_shows(
    alerting_server: Gunicorn,
    admin_login: tuple[str, str],
    browser_page: Any,
    artifacts: Path,
    receiver: Receiver,  # noqa: F811
) -> None:
    page = browser_page
    log_in(page, alerting_server, admin_login)
    job_page = f"{alerting_server.url}/admin/stayy/job/{quote(FAIL_JOB)}/change/"
    page.goto(job_page)
    expect(page.locator('button[data-command="run-now"]')).to_be_visible()
    page.click('button[data-command="run-now"]')
    expect(page.locator(".messagelist")).to_contain_text(f"Queued {FAIL_JOB}")

    sent = wait_until(
        lambda: alerts_of(receiver, FAIL_JOB),
        timeout=LEADER_TIMEOUT + RUN_TIMEOUT,
        interval=0.5,
        message="no alert reached the webhook",
    )
    assert sent[0]["event"] == "run.failed"
    assert sent[0]["run"]["status"] == "failed"

    def shown() -> bool:
        page.goto(job_page)
        table = page.locator("table.job-alerts")
        return table.count() > 0 and "delivered" in table.inner_text()

    wait_until(shown, timeout=30, interval=0.5, message="the job page does not show the delivered alert")
    expect(page.locator("table.job-alerts")).to_contain_text("run.failed")
    expect(page.locator("table.job-alerts")).to_contain_text("webhook")
    page.screenshot(path=str(artifacts / "alert-on-job-page.png"), full_page=True)

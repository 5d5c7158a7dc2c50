"""The ``users.sync_third_party_users`` job: skipped without a URL, cancellable, reports progress,
survives a killed process, and shows its progress and summary in ``runjobs --run``, the API and the admin."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import time

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from stayy.models import JobRun
from stayy.scheduling import JobCancelled, JobSkipped, registry
from stayy.scheduling.triggers import IntervalSchedule
from tests.jobs.support import run_manage, run_rows, subprocess_env, wait_until
from tests.support import PROJECT_DIR
from tests.upstream.conftest import cancel_after_first_page, resize, sync_job_context
from users.jobs import sync_third_party_users
from users.models import SyncCursor, User
from users.repository import sync_state, upstream
from users.services import sync as sync_service

JOB = "users.sync_third_party_users"


def test_the_job_is_registered_every_five_minutes_with_a_ten_minute_timeout():
    spec = registry.get(JOB)

    assert spec.handler is sync_third_party_users
    assert spec.timeout == 600
    assert spec.schedule == IntervalSchedule(seconds=300)


def test_without_a_url_the_job_is_skipped(settings):
    settings.THIRD_PARTY_USERS_URL = ""

    with pytest.raises(JobSkipped, match="THIRD_PARTY_USERS_URL is not set"):
        sync_third_party_users(sync_job_context())


@pytest.mark.processes
@pytest.mark.django_db
def test_the_job_syncs_and_reports_progress(upstream_url):
    resize(upstream_url, 1200)
    ctx = sync_job_context()

    result = sync_third_party_users(ctx)

    assert result is not None
    assert result["created"] == 1200 - 1200 // 50
    assert result["pages"] == 3  # the default page size is 500
    assert ctx.summary == result
    assert User.objects.filter(source=User.Source.THIRD_PARTY).count() == result["created"]


@pytest.mark.processes
@pytest.mark.django_db
def test_a_cancelled_run_stops_between_pages_and_is_recorded_as_cancelled(upstream_url):
    resize(upstream_url, 1200)
    ctx = sync_job_context()
    original = ctx.report_progress

    def cancel_after_the_first_page(values=None, /, **counters):
        original(values, **counters)
        ctx.cancel("timeout")

    ctx.report_progress = cancel_after_the_first_page  # type: ignore[method-assign]

    with pytest.raises(JobCancelled, match="timeout"):
        sync_third_party_users(ctx)

    assert ctx.summary["pages"] == 1
    assert User.objects.filter(source=User.Source.THIRD_PARTY).count() == ctx.summary["created"] > 0


@pytest.mark.processes
@pytest.mark.django_db
def test_a_cancel_during_a_retry_wait_ends_the_run_promptly(upstream_url, faults, settings):
    settings.THIRD_PARTY_USERS_BACKOFF_MAX = 120
    resize(upstream_url, 1200)
    faults({"fault": "ok"}, {"fault": "throttle", "retry_after": 90})
    ctx = sync_job_context()
    cancel_after_first_page(ctx)
    started = time.monotonic()

    with pytest.raises(JobCancelled, match="shutdown"):
        sync_third_party_users(ctx)

    assert time.monotonic() - started < 15  # not the 90 s the upstream asked for
    assert ctx.summary["pages"] == 1
    assert faults.served() == {"ok": 1, "throttle": 1}


# --- as a process: killed mid-run, and the debugging runner ---

JOB_USERS = 2500  # five pages of the job's 500
JOB_LIVE_USERS = JOB_USERS - JOB_USERS // 50


def job_env(upstream_url: str, **extra: str) -> dict[str, str]:
    return subprocess_env(THIRD_PARTY_USERS_URL=upstream_url, **extra)


@pytest.mark.processes
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_a_run_killed_mid_run_loses_and_skips_nothing(upstream_url, faults):
    resize(upstream_url, JOB_USERS)
    faults(delay=0.5)  # every page: time to kill the process between two of them
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runjobs", "--run", JOB],
        cwd=PROJECT_DIR,
        env=job_env(upstream_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: SyncCursor.objects.exclude(cursor="").exists(), timeout=60)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    faults()

    # Exactly the users before the stored cursor are mirrored: the cursor moved with its page.
    stored = sync_state.get_cursor(sync_service.SYNC_CURSOR_NAME)
    first_missing = int(upstream.fetch_changes(cursor=stored, limit=1).users[0].id[1:])
    assert first_missing < JOB_USERS, "killed after the last page: the test proves nothing"
    before = {f"u{index:06d}" for index in range(1, first_missing) if index % 50}
    assert set(User.objects.values_list("external_id", flat=True)) == before

    result = sync_service.user_sync_from_upstream(should_stop=lambda: False)

    assert result["created"] == JOB_LIVE_USERS - len(before)
    assert result["rejected"] == result["updated"] == 0
    expected = {f"u{index:06d}" for index in range(1, JOB_USERS + 1) if index % 50}
    assert set(User.objects.values_list("external_id", flat=True)) == expected


def run_on_a_terminal(args: list[str], *, env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run ``manage.py`` with stdout and stderr on one pseudo-terminal; returns (exit code, what it got)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        return process.wait(timeout=max(1.0, deadline - time.monotonic())), output.decode()
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
            process.wait()


REDRAW = "\r\x1b[K"


@pytest.mark.processes
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_runjobs_run_on_a_terminal_redraws_one_progress_line(upstream_url):
    resize(upstream_url, 1200)
    # A rejection on the first page: a log line in the middle of the run.
    User.objects.create_user(username="ann", email="user000007@upstream.example")

    code, output = run_on_a_terminal(["runjobs", "--run", JOB], env=job_env(upstream_url, COLUMNS="200"))

    assert code == 0, output
    status = rf"[|/\\-] {re.escape(JOB)} +[0-9.]+ s  (pages=\d+, created=\d+, [^\r\n\x1b]*)"
    assert re.findall(re.escape(REDRAW) + status, output) == [
        "pages=1, created=489, updated=0, unchanged=10, deactivated=0, rejected=1, "
        "rejects=[{'id': 'u000007', 'reason': 'its email is used by another user'}]",
        "pages=2, created=979, updated=0, unchanged=20, deactivated=0, rejected=1, "
        "rejects=[{'id': 'u000007', 'reason': 'its email is used by another user'}]",
        "pages=3, created=1175, updated=0, unchanged=24, deactivated=0, rejected=1, "
        "rejects=[{'id': 'u000007', 'reason': 'its email is used by another user'}]",
    ]
    assert "progress:" not in output
    # What the terminal shows: each line as the last redraw on it left it.
    shown = [line.rsplit(REDRAW, 1)[-1] for line in output.split("\r\n")]
    rejected = [line for line in shown if "rejected: its email" in line]
    assert len(rejected) == 1
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ WARNING ", rejected[0]), "not behind a status line"
    assert any(line.startswith(f"{JOB}: succeeded in ") for line in shown)


@pytest.mark.processes
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_runjobs_run_prints_plain_lines_and_the_summary_reaches_the_api_and_the_admin(upstream_url, client):
    resize(upstream_url, 1200)
    User.objects.create_user(username="ann", email="user000007@upstream.example")

    result = run_manage("runjobs", "--run", JOB, env=job_env(upstream_url), timeout=90)

    assert result.returncode == 0, result.stderr
    summary = {
        "pages": 3,
        "created": 1175,
        "updated": 0,
        "unchanged": 24,
        "deactivated": 0,
        "rejected": 1,
        "rejects": [{"id": "u000007", "reason": "its email is used by another user"}],
    }
    progress = [line for line in result.stdout.splitlines() if line.startswith("progress: ")]
    assert progress[-1] == "progress: " + ", ".join(f"{key}={value}" for key, value in summary.items())
    assert [line.split(", ")[0] for line in progress] == [
        "progress: pages=1",
        "progress: pages=2",
        "progress: pages=3",
    ]
    assert "\r" not in result.stdout
    assert "upstream user u000007 rejected: its email is used by another user" in result.stderr
    (run,) = run_rows(job_name=JOB)
    assert (run.trigger, run.status, run.summary) == (
        JobRun.Trigger.COMMAND,
        JobRun.Status.SUCCEEDED,
        summary,
    )

    staff = get_user_model().objects.create_superuser(username="root", email="root@example.com", password="x")
    client.force_login(staff)
    body = client.get(f"/api/jobs/{JOB}/runs/{run.pk}/").json()
    assert body["summary"] == summary
    listed = client.get(f"/api/jobs/{JOB}/runs/").json()["results"]
    assert [(item["id"], item["summary"]) for item in listed] == [(run.pk, summary)]
    page = client.get(reverse("admin:stayy_jobrun_change", args=[run.pk])).content.decode()
    assert "&quot;created&quot;: 1175" in page
    assert "&quot;rejected&quot;: 1" in page

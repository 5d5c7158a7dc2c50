"""/metrics under real gunicorn with embedded jobs: run counts match the run history, one leader.

A job runs every second in whichever worker leads; /metrics is scraped through
fresh connections, so either worker answers. Once the job is paused and the
history is still, every scrape reports exactly what the run table holds.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from django.db.models import Count

from stayy import services
from stayy.models import JobRun
from stayy.scheduling import registry
from tests.observability.support import (
    METRICS_TOKEN,
    Gunicorn,
    child_env,
    gunicorn,
    metric_value,
    this_run_database_url,
    wait_until,
)

JOB = "stayy.purge_job_runs"
AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def scrape(server: Gunicorn) -> str:
    response = server.get("/metrics", headers=AUTH)
    assert response.status == 200, response.body
    return response.body.decode()


def history_is_still(seconds: float) -> bool:
    """No run of the job executes and no row was added for ``seconds`` (the job ticks every second)."""
    before = JobRun.objects.filter(job_name=JOB).count()
    time.sleep(seconds)
    active = JobRun.objects.filter(job_name=JOB, active=True).exists()
    return not active and JobRun.objects.filter(job_name=JOB).count() == before


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_job_metrics_match_the_run_history_whichever_worker_answers(tmp_path: Path) -> None:
    others = {name: {"enabled": False} for name in registry.job_names() if name != JOB}
    job_name = f"obs-gunicorn-{uuid.uuid4().hex[:8]}"
    env = child_env(
        DATABASE_URL=this_run_database_url(),
        GUNICORN_WORKERS="2",
        JOB_ENABLE="1",
        JOB_NAME=job_name,
        JOB_LEASE_TTL="3",
        JOB_SHUTDOWN_GRACE="2",
        JOB_OVERRIDES=json.dumps({**others, JOB: {"interval": 1, "misfire_grace": 30}}),
    )
    with gunicorn(env=env, log_path=tmp_path / "gunicorn.log") as server:
        wait_until(
            lambda: JobRun.objects.filter(job_name=JOB, status="succeeded").count() >= 3,
            timeout=30,
            message="the job did not run three times",
        )
        # Exactly one worker leads: the gauge is summed over the live workers.
        for _ in range(4):
            assert metric_value(scrape(server), "stayy_job_server_leader", name=job_name) == 1

        services.job_pause(name=JOB, requested_by="test")
        wait_until(lambda: history_is_still(2.5), timeout=30, interval=0, message="the job kept running")

        by_status = dict(
            JobRun.objects.filter(job_name=JOB).values_list("status").annotate(n=Count("id")).order_by()
        )
        assert by_status.get("succeeded", 0) >= 3
        scheduled_runs = JobRun.objects.filter(
            job_name=JOB, trigger="schedule", started_at__isnull=False
        ).count()
        last_success = (
            JobRun.objects.filter(job_name=JOB, status="succeeded")
            .order_by("-finished_at")
            .first()
            .finished_at
        )
        for _ in range(6):  # a fresh connection each: either worker may answer
            text = scrape(server)
            for status in ("succeeded", "failed", "timed_out", "skipped", "missed"):
                assert metric_value(text, "stayy_job_runs_total", job=JOB, status=status) == by_status.get(
                    status, 0
                ), status
            executed = by_status["succeeded"] + by_status.get("failed", 0) + by_status.get("timed_out", 0)
            assert metric_value(text, "stayy_job_duration_seconds_count", job=JOB) == executed
            assert metric_value(text, "stayy_job_lateness_seconds_count", job=JOB) == scheduled_runs
            last = metric_value(text, "stayy_job_last_success_timestamp_seconds", job=JOB)
            assert last == pytest.approx(last_success.timestamp(), abs=1.0)


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_job_lines_under_gunicorn_carry_their_run_and_are_stored_with_it(tmp_path: Path) -> None:
    others = {name: {"enabled": False} for name in registry.job_names() if name != JOB}
    env = child_env(
        DATABASE_URL=this_run_database_url(),
        GUNICORN_WORKERS="2",
        LOG_FORMAT="json",
        JOB_ENABLE="1",
        JOB_NAME=f"obs-gunicorn-{uuid.uuid4().hex[:8]}",
        JOB_LEASE_TTL="3",
        JOB_SHUTDOWN_GRACE="2",
        JOB_OVERRIDES=json.dumps({**others, JOB: {"interval": 1, "misfire_grace": 30}}),
    )
    with gunicorn(env=env, log_path=tmp_path / "gunicorn.log") as server:
        finished = wait_until(
            lambda: list(JobRun.objects.filter(job_name=JOB, status="succeeded").order_by("id")[:2]),
            timeout=30,
            message="the job did not run",
        )
        started = {
            line["run_id"]: line
            for line in server.json_lines()
            if line["logger"] == "stayy.jobs" and line["message"].startswith("run started")
        }
    for run in finished:
        line = started[run.pk]
        assert line["job"] == JOB
        # The same record opens the run's own log (same UTC time; the run needs no tag there).
        assert run.log.splitlines()[0] == f"{line['ts']} INFO stayy.jobs: {line['message']}"

"""The job runtime reports to the observability package: run metrics, lateness, log context."""

from __future__ import annotations

import io
import logging
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from stayy.observability.logcontext import RunContextFilter
from stayy.observability.logformat import PlainFormatter
from stayy.repository import runs
from stayy.scheduling import runner
from stayy.scheduling.registry import JobSpec
from stayy.scheduling.triggers import IntervalSchedule
from tests.observability.support import metric_value
from tests.observability.test_metrics import scrape

JOB = "tests.observed_by_runtime"


def _handler(ctx):
    logging.getLogger("tests.observability.service").info("working")
    return {"done": 1}


@pytest.mark.django_db(transaction=True)
def test_an_executed_run_is_counted_timed_and_its_lines_tagged(client: Client, metrics_token: str) -> None:
    spec = JobSpec(name=JOB, handler=_handler, schedule=IntervalSchedule(60), timeout=10, misfire_grace=30)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RunContextFilter())
    handler.setFormatter(PlainFormatter())
    service_logger = logging.getLogger("tests.observability.service")
    service_logger.addHandler(handler)
    service_logger.setLevel(logging.INFO)
    before = scrape(client, metrics_token)
    try:
        run = runs.claim_tick(job_name=JOB, scheduled_for=timezone.now() - timedelta(seconds=2))
        assert run is not None
        assert runner.execute(spec, run) == "succeeded"
    finally:
        service_logger.removeHandler(handler)
    after = scrape(client, metrics_token)

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, job=JOB, **labels) - metric_value(before, name, job=JOB, **labels)

    assert delta("stayy_job_runs_total", status="succeeded") == 1
    assert delta("stayy_job_duration_seconds_count") == 1
    assert delta("stayy_job_lateness_seconds_count") == 1
    assert delta("stayy_job_lateness_seconds_sum") == pytest.approx(2, abs=1)
    assert metric_value(after, "stayy_job_last_success_timestamp_seconds", job=JOB) > 0
    assert stream.getvalue().strip().endswith(f"[job={JOB} run={run.pk}]: working")

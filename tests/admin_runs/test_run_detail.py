"""A run's detail: the admin page and the staff API show every field, the traceback and the log.

The runs are executed by the runner for real (a failing handler that logs), so
the page shows what an operator would find after a failure.
"""

from __future__ import annotations

import html
import logging
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from stayy.models import JobRun
from stayy.repository import runs
from stayy.scheduling import runner
from stayy.scheduling.registry import JobSpec
from stayy.scheduling.triggers import IntervalSchedule

# The runner closes connections around a run, which a test transaction does not survive.
pytestmark = pytest.mark.django_db(transaction=True)

# A registered job (the API answers only for those); the handler is this module's.
JOB = "stayy.purge_job_runs"


def failing_handler(ctx: Any) -> None:
    ctx.report_progress(pages=2)
    logging.getLogger("tests.admin_runs.service").warning("page 3 of <users> answered 503")
    raise ConnectionError("upstream closed the connection")


@pytest.fixture
def failed_run() -> JobRun:
    spec = JobSpec(
        name=JOB, handler=failing_handler, schedule=IntervalSchedule(60), timeout=10, misfire_grace=30
    )
    run = runs.create_started(job_name=JOB, trigger=JobRun.Trigger.COMMAND)
    assert runner.execute(spec, run) == JobRun.Status.FAILED
    return JobRun.objects.get(pk=run.pk)


def change_page(client: Client, run: JobRun) -> str:
    response = client.get(reverse("admin:stayy_jobrun_change", args=[run.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_admin_run_page_shows_every_field_the_traceback_and_the_log(
    superuser_client: Client, failed_run: JobRun
) -> None:
    content = change_page(superuser_client, failed_run)
    text = html.unescape(content)
    for label in (
        "ID:",
        "Job:",
        "Status:",
        "Trigger:",
        "Requested by:",
        "Scheduled for:",
        "Created at:",
        "Started at:",
        "Finished at:",
        "Duration:",
        "Heartbeat at:",
        "Host:",
        "Pid:",
        "Active:",
        "Error:",
        "Summary:",
        "Traceback:",
        "Logged lines:",
    ):
        assert f">{label}</label>" in content, label
    assert f'<div class="readonly">{failed_run.pk}</div>' in content
    assert "?job_name=stayy.purge_job_runs" in content  # the job's other runs
    assert str(failed_run.pid) in text and failed_run.host in text
    assert "ConnectionError: upstream closed the connection" in text
    assert '"pages": 2' in text
    assert "Traceback (most recent call last):" in text and "failing_handler" in text
    # The log, escaped: what the service wrote, in order.
    assert "WARNING tests.admin_runs.service: page 3 of &lt;users&gt; answered 503" in content
    assert text.index("run started (command") < text.index("page 3 of <users> answered 503")
    assert 'name="_save"' not in content


def test_admin_run_page_of_a_run_that_logged_nothing(superuser_client: Client) -> None:
    run = runs.create_queued(job_name=JOB, requested_by="root")
    content = change_page(superuser_client, run)
    assert ">Logged lines:</label>" in content


def test_the_history_list_reads_neither_logs_nor_tracebacks(
    superuser_client: Client, failed_run: JobRun
) -> None:
    with CaptureQueriesContext(connection) as captured:
        response = superuser_client.get(reverse("admin:stayy_jobrun_changelist"))
    assert response.status_code == 200
    page = [q["sql"] for q in captured.captured_queries if "LIMIT" not in q["sql"] and '"error"' in q["sql"]]
    assert page, captured.captured_queries
    assert all('"stayy_jobrun"."log"' not in sql and '"traceback"' not in sql for sql in page)


@pytest.fixture
def staff_api(staff_user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(staff_user)
    return client


def test_api_run_detail_has_the_log_and_the_list_does_not(staff_api: APIClient, failed_run: JobRun) -> None:
    detail = staff_api.get(f"/api/jobs/{JOB}/runs/{failed_run.pk}/")
    assert detail.status_code == 200
    body = detail.json()
    assert body["log"] == failed_run.log
    assert "WARNING tests.admin_runs.service: page 3 of <users> answered 503\n" in body["log"]
    assert body["traceback"] == failed_run.traceback

    listed = staff_api.get(f"/api/jobs/{JOB}/runs/")
    assert listed.status_code == 200
    (row,) = listed.json()["results"]
    assert row["id"] == failed_run.pk
    assert "log" not in row and "traceback" not in row


def test_api_schema_documents_the_log(staff_api: APIClient) -> None:
    schema = staff_api.get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    components = schema.json()["components"]["schemas"]
    assert "log" in components["JobRunDetail"]["properties"]
    assert "log" not in components["JobRun"]["properties"]


@pytest.mark.sqlite
def test_history_search_and_run_page_on_sqlite(superuser_client: Client, failed_run: JobRun) -> None:
    assert connection.vendor == "sqlite"
    changelist = reverse("admin:stayy_jobrun_changelist")
    found = superuser_client.get(changelist, {"q": "closed the CONNECTION", "status__exact": "failed"})
    assert found.status_code == 200
    assert [run.pk for run in found.context["cl"].result_list] == [failed_run.pk]
    assert not list(superuser_client.get(changelist, {"q": "no such error"}).context["cl"].result_list)
    assert "page 3 of &lt;users&gt; answered 503" in change_page(superuser_client, failed_run)

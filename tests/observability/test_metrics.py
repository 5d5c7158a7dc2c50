"""/metrics: bearer token, HTTP and job metrics, the leader gauge."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from django.test import Client, override_settings

from stayy.observability import metrics
from stayy.runtime import embedded
from tests.observability.support import PROJECT_DIR, child_env, metric_value, wait_until


def scrape(client: Client, token: str) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def test_metrics_404_while_no_token_is_configured(client: Client) -> None:
    with override_settings(METRICS_TOKEN=""):
        assert client.get("/metrics").status_code == 404
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_metrics_401_without_or_with_a_wrong_token(client: Client, metrics_token: str) -> None:
    for authorization in (
        None,
        "Bearer wrong",
        f"Basic {metrics_token}",
        f"Bearer {metrics_token}x",
        "Bearer ",
    ):
        headers = {"Authorization": authorization} if authorization is not None else {}
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, authorization
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"bearer {metrics_token}").status_code == 200


def test_http_requests_are_counted_by_view_method_and_status(client: Client, metrics_token: str) -> None:
    before = scrape(client, metrics_token)
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert client.get("/no-such-page/").status_code == 404
    assert client.post("/healthz").status_code == 405
    after = scrape(client, metrics_token)

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    ok = {"view": "healthz", "method": "GET", "status": "200"}
    assert delta("stayy_http_requests_total", **ok) == 3
    assert delta("stayy_http_request_duration_seconds_count", **ok) == 3
    assert delta("stayy_http_request_duration_seconds_sum", **ok) > 0
    assert delta("stayy_http_requests_total", view="healthz", method="POST", status="405") == 1
    assert delta("stayy_http_requests_total", view=metrics.UNMATCHED_VIEW, method="GET", status="404") == 1
    # The first scrape itself was counted once it had been answered.
    assert delta("stayy_http_requests_total", view="metrics", method="GET", status="200") == 1


@pytest.mark.django_db
def test_requests_are_labelled_with_the_namespaced_url_pattern_name(
    client: Client, metrics_token: str
) -> None:
    before = scrape(client, metrics_token)
    assert client.get("/admin/login/").status_code == 200
    after = scrape(client, metrics_token)
    labels = {"view": "admin:login", "method": "GET", "status": "200"}
    delta = metric_value(after, "stayy_http_requests_total", **labels) - metric_value(
        before, "stayy_http_requests_total", **labels
    )
    assert delta == 1
    assert "/admin/login/" not in after  # paths never become label values


def test_job_runs_duration_lateness_and_last_success(client: Client, metrics_token: str) -> None:
    job = "tests.observed_job"
    before = scrape(client, metrics_token)
    metrics.observe_run(job, "succeeded", duration_s=2.0, lateness_s=0.3)
    metrics.observe_run(job, "failed", duration_s=0.5, lateness_s=None)
    metrics.observe_ticks_not_run(job, "missed", 3)
    metrics.observe_ticks_not_run(job, "skipped")
    finished_at = time.time()
    after = scrape(client, metrics_token)

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, job=job, **labels) - metric_value(before, name, job=job, **labels)

    assert delta("stayy_job_runs_total", status="succeeded") == 1
    assert delta("stayy_job_runs_total", status="failed") == 1
    assert delta("stayy_job_runs_total", status="missed") == 3
    assert delta("stayy_job_runs_total", status="skipped") == 1
    assert delta("stayy_job_duration_seconds_count") == 2
    assert delta("stayy_job_duration_seconds_sum") == pytest.approx(2.5)
    assert delta("stayy_job_duration_seconds_bucket", le="1.0") == 1
    assert delta("stayy_job_lateness_seconds_count") == 1
    assert delta("stayy_job_lateness_seconds_sum") == pytest.approx(0.3)
    last_success = metric_value(after, "stayy_job_last_success_timestamp_seconds", job=job)
    assert finished_at - 5 < last_success <= finished_at


@pytest.mark.django_db(transaction=True)
def test_leader_gauge_follows_the_job_server(client: Client, metrics_token: str, job_settings: dict) -> None:
    name = job_settings["JOB_NAME"]
    server = embedded.start()
    assert server is not None
    wait_until(lambda: server.state == "leader", timeout=15, message="the job server never led")
    assert metric_value(scrape(client, metrics_token), "stayy_job_server_leader", name=name) == 1
    embedded.stop()
    assert metric_value(scrape(client, metrics_token), "stayy_job_server_leader", name=name) == 0


def test_set_leader_is_what_the_job_server_reports(client: Client, metrics_token: str) -> None:
    metrics.set_leader("tests-cluster", True)
    assert metric_value(scrape(client, metrics_token), "stayy_job_server_leader", name="tests-cluster") == 1
    metrics.set_leader("tests-cluster", False)
    assert metric_value(scrape(client, metrics_token), "stayy_job_server_leader", name="tests-cluster") == 0


BROKEN_DIR_SNIPPET = """
import django
django.setup()
from django.test import Client
from stayy.observability import metrics
metrics.observe_run("tests.job", "succeeded", duration_s=1.0, lateness_s=0.1)
client = Client(HTTP_HOST="localhost")
print(client.get("/healthz").status_code, client.get("/readyz").status_code)
"""


def test_metrics_failures_never_break_requests_or_runs(tmp_path) -> None:
    # A PROMETHEUS_MULTIPROC_DIR that does not exist: every observation fails to write.
    env = child_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "missing"), REDIS_URL="")
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    result = subprocess.run(
        [sys.executable, "-c", BROKEN_DIR_SNIPPET],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "200"]
    assert result.stderr.count("metrics not recorded") == 1  # logged once, not per observation

"""/healthz and /readyz: liveness without dependencies; readiness of the database, Redis and jobs."""

from __future__ import annotations

import logging
import time

import pytest
from django.conf import settings
from django.test import Client, override_settings

from stayy.repository import leases
from stayy.runtime import embedded
from tests.observability.support import child_env, gunicorn, this_run_database_url, wait_until

DOWN_REDIS = "redis://127.0.0.1:1/0"


def test_healthz_answers_ok_without_touching_the_database(client: Client) -> None:
    # No django_db mark: any database query here would fail the test.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_probes_answer_whatever_the_host_header(client: Client) -> None:
    # Load balancers and orchestrators probe by address, not by a name in ALLOWED_HOSTS.
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/api/users/", HTTP_HOST="10.1.2.3:8000").status_code == 400


def test_healthz_rejects_writes(client: Client) -> None:
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_readyz_ready_with_job_server_disabled(client: Client) -> None:
    assert settings.REDIS_URL, "run the suite with REDIS_URL set (see the README)"
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok"},
        "job_server": "disabled",
    }


@pytest.mark.django_db
def test_readyz_without_redis_configured(client: Client) -> None:
    with override_settings(REDIS_URL="", STAYY={**settings.STAYY, "REDIS_URL": ""}):
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "not configured"}


@pytest.mark.django_db
def test_readyz_503_names_redis_when_it_is_down(client: Client, caplog) -> None:
    with override_settings(REDIS_URL=DOWN_REDIS, STAYY={**settings.STAYY, "REDIS_URL": DOWN_REDIS}):
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="stayy.observability.views"):
            response = client.get("/readyz")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert body == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "down"},
        "job_server": "disabled",
    }
    # The error, with the address it could not reach, is for the log, not for any caller.
    assert "refused" in caplog.text.lower() and "127.0.0.1:1" in caplog.text
    assert elapsed < 3


@pytest.mark.django_db
def test_readyz_503_when_only_the_lease_redis_is_down(client: Client) -> None:
    with override_settings(STAYY={**settings.STAYY, "REDIS_URL": DOWN_REDIS}):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "down"


@pytest.mark.django_db(transaction=True)
def test_readyz_reports_the_leader(client: Client, job_settings: dict) -> None:
    server = embedded.start()
    assert server is not None
    wait_until(lambda: server.state == "leader", timeout=15, message="the job server never led")
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["job_server"] == "leader"


@pytest.mark.django_db(transaction=True)
def test_readyz_reports_a_candidate_while_another_process_leads(client: Client, job_settings: dict) -> None:
    other = leases.build_lease(
        name=job_settings["JOB_NAME"], token="another-process", ttl=60, redis_url=job_settings["REDIS_URL"]
    )
    assert other.acquire()
    try:
        server = embedded.start()
        assert server is not None
        time.sleep(1.5)  # several acquire attempts (every TTL/3 = 1 s), all lost to the other holder
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json()["job_server"] == "candidate"
        assert server.state == "candidate"
    finally:
        other.release()


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_readyz_503_names_the_database_when_it_is_down(tmp_path) -> None:
    env = child_env(DATABASE_URL="postgres://root@127.0.0.1:1/stayy", GUNICORN_WORKERS="1")
    with gunicorn(env=env, log_path=tmp_path / "gunicorn.log") as server:
        assert server.get("/healthz").status == 200  # liveness does not depend on the database
        response = server.get("/readyz")
        assert response.status == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"] == "down"
        assert b"127.0.0.1" not in response.body and b"root" not in response.body
        assert body["checks"]["redis"] == "ok"
        assert body["job_server"] == "disabled"
        # The same process with a reachable database is ready.
    env = child_env(DATABASE_URL=this_run_database_url(), GUNICORN_WORKERS="1")
    with gunicorn(env=env, log_path=tmp_path / "gunicorn-ok.log") as server:
        response = server.get("/readyz")
        assert response.status == 200, response.body
        assert response.json()["checks"] == {"database": "ok", "redis": "ok"}

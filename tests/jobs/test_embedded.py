"""Where ``ready()`` starts the embedded job server: only in serving processes, once."""

from __future__ import annotations

import os
import signal
import sys
import uuid

import pytest

from stayy.models import JobRun, LeaderLease
from stayy.runtime import embedded
from stayy.runtime.embedded import should_start_from_ready
from tests.jobs.support import (
    every_second,
    free_port,
    parent_pid,
    run_manage,
    run_rows,
    running,
    subprocess_env,
    wait_until,
)

PURGE = "stayy.purge_job_runs"
VENV_BIN = "/srv/app/.venv/bin"


@pytest.fixture
def jobs_on(settings):
    settings.STAYY = {**settings.STAYY, "JOB_ENABLE": True}


@pytest.fixture
def jobs_off(settings):
    settings.STAYY = {**settings.STAYY, "JOB_ENABLE": False}


NOT_SERVING = [
    pytest.param(["manage.py", "migrate"], {}, id="migrate"),
    pytest.param(["manage.py", "migrate"], {"RUN_MAIN": "true"}, id="migrate-run-main"),
    pytest.param(["manage.py", "shell"], {}, id="shell"),
    pytest.param(["manage.py", "test"], {}, id="test"),
    pytest.param(["manage.py", "makemigrations"], {}, id="makemigrations"),
    pytest.param(["manage.py", "collectstatic", "--no-input"], {}, id="collectstatic"),
    pytest.param(["manage.py", "check"], {}, id="check"),
    pytest.param(["manage.py", "runjobs"], {}, id="runjobs-has-its-own-server"),
    pytest.param(["manage.py"], {}, id="manage-py-help"),
    pytest.param(["manage.py", "runserver"], {}, id="autoreloader-parent"),
    pytest.param(["manage.py", "runserver", "0:8000"], {"RUN_MAIN": "false"}, id="run-main-not-true"),
    pytest.param([f"{VENV_BIN}/gunicorn", "-c", "gunicorn.conf.py"], {}, id="gunicorn"),
    pytest.param([f"{VENV_BIN}/gunicorn", "--preload", "config.wsgi"], {"RUN_MAIN": "true"}, id="gunicorn-2"),
    pytest.param([f"{VENV_BIN}/pytest", "tests"], {}, id="pytest"),
    pytest.param(["/usr/lib/python3/site-packages/pytest/__main__.py", "tests"], {}, id="python-m-pytest"),
    pytest.param([f"{VENV_BIN}/django-admin", "migrate"], {}, id="django-admin-migrate"),
]
SERVING = [
    pytest.param(["manage.py", "runserver"], {"RUN_MAIN": "true"}, id="autoreloader-child"),
    pytest.param(
        ["/srv/app/manage.py", "runserver", "127.0.0.1:8000"], {"RUN_MAIN": "true"}, id="child-addr"
    ),
    pytest.param(["manage.py", "runserver", "--noreload"], {}, id="noreload"),
    pytest.param(["manage.py", "runserver", "0:8000", "--noreload"], {}, id="noreload-addr"),
    pytest.param([f"{VENV_BIN}/django-admin", "runserver"], {"RUN_MAIN": "true"}, id="django-admin"),
    pytest.param(
        ["/usr/lib/python3/site-packages/django/__main__.py", "runserver", "--noreload"], {}, id="m-django"
    ),
]


@pytest.mark.usefixtures("jobs_on")
@pytest.mark.parametrize(("argv", "environ"), NOT_SERVING)
def test_not_started_outside_serving_processes(argv, environ):
    assert should_start_from_ready(argv, environ) is False


@pytest.mark.usefixtures("jobs_on")
@pytest.mark.parametrize(("argv", "environ"), SERVING)
def test_started_in_the_serving_runserver_process(argv, environ):
    assert should_start_from_ready(argv, environ) is True


@pytest.mark.usefixtures("jobs_off")
@pytest.mark.parametrize(("argv", "environ"), NOT_SERVING + SERVING)
def test_never_started_when_job_enable_is_off(argv, environ):
    assert should_start_from_ready(argv, environ) is False


@pytest.mark.usefixtures("jobs_off")
def test_start_does_nothing_when_job_enable_is_off():
    assert embedded.start() is None
    assert embedded.current() is None


@pytest.mark.django_db(transaction=True)
def test_start_is_idempotent_and_stop_releases(settings, overrides, server_name):
    overrides({})
    settings.STAYY = {**settings.STAYY, "JOB_ENABLE": True, "JOB_NAME": server_name, "SHUTDOWN_GRACE": 5.0}
    sigterm = signal.getsignal(signal.SIGTERM)
    first = embedded.start()
    try:
        assert first is not None
        assert embedded.start() is first
        assert embedded.current() is first
        wait_until(lambda: first.state == "leader", timeout=first.ttl + 5)
    finally:
        embedded.stop()
        signal.signal(signal.SIGTERM, sigterm)  # start() made SIGTERM exit this (pytest) process
    assert embedded.current() is None
    assert first.state == "stopped"
    assert LeaderLease.objects.get(name=server_name).holder == ""


# --- real processes ------------------------------------------------------------------


def job_env(job_name: str, **extra: str) -> dict[str, str]:
    return subprocess_env(JOB_ENABLE="1", JOB_NAME=job_name, JOB_OVERRIDES=every_second(PURGE), **extra)


def assert_lease_released(job_name: str) -> None:
    from stayy.conf import stayy_settings

    row = LeaderLease.objects.filter(name=job_name).first()
    assert row is not None, "no leader ever recorded"
    assert row.holder == "", f"lease still held by {row.host}:{row.pid}"
    if stayy_settings.redis_url:
        import redis

        assert not redis.Redis.from_url(stayy_settings.redis_url).exists(f"stayy:lease:{job_name}")


@pytest.mark.processes
@pytest.mark.timeout(90)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "database", [pytest.param("default"), pytest.param("sqlite", marks=pytest.mark.sqlite)]
)
def test_runserver_runs_jobs_only_in_the_autoreloader_child(tmp_path, database):
    job_name = f"test-rs-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{free_port()}"]
    with running(argv, env=job_env(job_name), log_path=tmp_path / "runserver.log") as parent:
        rows = wait_until(
            lambda: run_rows(job_name=PURGE, status=JobRun.Status.SUCCEEDED), timeout=40, interval=0.2
        )
        child = rows[0].pid
        assert child != parent.pid
        assert parent_pid(child) == parent.pid, "runs recorded by a process that is not the reloader's child"
        wait_until(lambda: len(run_rows(job_name=PURGE)) >= 2, timeout=10)
        assert {r.pid for r in run_rows(job_name=PURGE)} == {child}
        assert LeaderLease.objects.get(name=job_name).pid == child

        os.kill(child, signal.SIGTERM)
        assert parent.wait(timeout=30) == 0, parent.output()
    assert_lease_released(job_name)
    assert JobRun.objects.filter(status=JobRun.Status.RUNNING).count() == 0
    assert JobRun.objects.filter(active=True).count() == 0


@pytest.mark.processes
@pytest.mark.timeout(90)
@pytest.mark.django_db(transaction=True)
def test_runserver_noreload_runs_jobs_and_stops_cleanly_on_sigterm(tmp_path):
    job_name = f"test-nr-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{free_port()}"]
    with running(argv, env=job_env(job_name), log_path=tmp_path / "runserver.log") as server:
        rows = wait_until(
            lambda: run_rows(job_name=PURGE, status=JobRun.Status.SUCCEEDED), timeout=40, interval=0.2
        )
        assert {r.pid for r in rows} == {server.pid}
        server.signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0, server.output()
    assert_lease_released(job_name)
    assert JobRun.objects.filter(active=True).count() == 0


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["migrate", "--no-input"], id="migrate"),
        pytest.param(["shell", "-c", "import time; time.sleep(2.5)"], id="shell-for-two-ticks"),
    ],
)
def test_management_commands_with_job_enable_start_no_job_server(args):
    job_name = f"test-mg-{uuid.uuid4().hex[:8]}"
    result = run_manage(*args, env=job_env(job_name))
    assert result.returncode == 0, result.stderr
    assert "job server" not in result.stderr
    assert not LeaderLease.objects.filter(name=job_name).exists()
    assert JobRun.objects.count() == 0

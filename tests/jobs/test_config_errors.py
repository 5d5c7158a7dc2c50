"""A bad setting stops ``manage.py`` and gunicorn with one line naming it, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.jobs.support import BIN_DIR, PROJECT_DIR, free_port

BAD_SETTINGS = [
    pytest.param({"JOB_OVERRIDES": '{"nope.job": {}}'}, "JOB_OVERRIDES", "nope.job", id="unknown-job"),
    pytest.param({"JOB_OVERRIDES": "not json"}, "JOB_OVERRIDES", "JSON", id="not-json"),
    pytest.param(
        {"JOB_OVERRIDES": '{"stayy.purge_job_runs": {"interval": 0}}'},
        "JOB_OVERRIDES",
        "stayy.purge_job_runs",
        id="bad-interval",
    ),
    pytest.param(
        {"JOB_OVERRIDES": '{"stayy.purge_job_runs": {"overlap": "wait"}}'},
        "JOB_OVERRIDES",
        "job 'stayy.purge_job_runs': overlap must be 'skip' or 'queue', got 'wait'",
        id="bad-overlap",
    ),
    pytest.param(
        {"JOB_OVERRIDES": '{"stayy.purge_job_runs": {"retries": -1}}'},
        "JOB_OVERRIDES",
        "job 'stayy.purge_job_runs': retries must be a whole number from 0 to 100, got -1",
        id="bad-retries",
    ),
    pytest.param({"JOB_ENABLE": "maybe"}, "JOB_ENABLE", "maybe", id="job-enable"),
    pytest.param({"DATABASE_URL": "foo://x"}, "DATABASE_URL", "foo://x", id="database-url"),
    pytest.param({"JOB_LEASE_TTL": "0.5"}, "JOB_LEASE_TTL", "0.5", id="lease-ttl"),
    pytest.param({"AUTH_FAILURE_LIMIT": "five"}, "AUTH_FAILURE_LIMIT", "five", id="auth-limit"),
    pytest.param({"AUTH_FAILURE_LIMIT": "0"}, "AUTH_FAILURE_LIMIT", "at least 1", id="auth-limit-zero"),
    pytest.param(
        {"AUTH_ADDRESS_FAILURE_LIMIT": "0"}, "AUTH_ADDRESS_FAILURE_LIMIT", "at least 1", id="address-limit"
    ),
    pytest.param({"AUTH_LOCKOUT_SECONDS": "0.5"}, "AUTH_LOCKOUT_SECONDS", "0.5", id="auth-lockout"),
    pytest.param({"API_TOKEN_TTL_DAYS": "0"}, "API_TOKEN_TTL_DAYS", "at least 1", id="token-ttl"),
    pytest.param(
        {"DJANGO_SECURE_PROXY_SSL_HEADER": "https"},
        "DJANGO_SECURE_PROXY_SSL_HEADER",
        "X-Forwarded-Proto: https",
        id="proxy-ssl-header",
    ),
    pytest.param(
        {"DJANGO_CSRF_TRUSTED_ORIGINS": "https://ok.example.com,api.example.com"},
        "DJANGO_CSRF_TRUSTED_ORIGINS",
        "'api.example.com'",
        id="csrf-origins-without-scheme",
    ),
    pytest.param(
        {"DJANGO_SECURE_HSTS_SECONDS": "-1"}, "DJANGO_SECURE_HSTS_SECONDS", "-1", id="hsts-negative"
    ),
    pytest.param(
        {"DJANGO_SECURE_HSTS_SECONDS": "3600", "DJANGO_SECURE_HSTS_PRELOAD": "1"},
        "DJANGO_SECURE_HSTS_PRELOAD",
        "31536000",
        id="hsts-preload-too-short",
    ),
    pytest.param({"DJANGO_SECURE_COOKIES": "maybe"}, "DJANGO_SECURE_COOKIES", "maybe", id="secure-cookies"),
    pytest.param({"DJANGO_TRUSTED_PROXIES": "one"}, "DJANGO_TRUSTED_PROXIES", "one", id="trusted-proxies"),
    pytest.param(
        {"JOB_ALERT_WEBHOOK_URL": "hooks.example.com/stayy", "JOB_ALERT_WEBHOOK_SECRET": "s"},
        "JOB_ALERT_WEBHOOK_URL",
        "scheme must be one of http, https",
        id="alert-webhook-url",
    ),
    pytest.param(
        {"JOB_ALERT_WEBHOOK_URL": "https://hooks.example.com/stayy", "JOB_ALERT_WEBHOOK_SECRET": ""},
        "JOB_ALERT_WEBHOOK_SECRET",
        "required when JOB_ALERT_WEBHOOK_URL is set",
        id="alert-webhook-without-secret",
    ),
    pytest.param({"JOB_ALERT_MAX_PER_HOUR": "0"}, "JOB_ALERT_MAX_PER_HOUR", "at least 1", id="alert-cap"),
    pytest.param({"SENTRY_DSN": "not-a-dsn"}, "SENTRY_DSN", "not a Sentry DSN", id="sentry-dsn"),
    pytest.param(
        {"SENTRY_DSN": "https://sentry.example.com/1"}, "SENTRY_DSN", "public key", id="sentry-dsn-no-key"
    ),
    pytest.param({"DJANGO_ADMINS": "Ops <ops>"}, "DJANGO_ADMINS", "'Ops <ops>'", id="admins"),
]


def env_with(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "JOB_"))}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["DJANGO_DEBUG"] = "1"
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def assert_one_line_naming(stderr: str, setting: str, detail: str) -> None:
    assert "Traceback" not in stderr, stderr
    ours = [line for line in stderr.splitlines() if line.startswith("stayy: ")]
    assert len(ours) == 1, stderr
    assert f"invalid setting {setting}" in ours[0], stderr
    assert detail in ours[0], stderr


@pytest.mark.parametrize(("changes", "setting", "detail"), BAD_SETTINGS)
def test_manage_py_check_fails_with_one_line(changes, setting, detail):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_DIR,
        env=env_with(**changes),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr  # exactly one line
    assert_one_line_naming(result.stderr, setting, detail)


def test_manage_py_without_secret_key_when_debug_is_off():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_DIR,
        env=env_with(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=None),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert_one_line_naming(result.stderr, "DJANGO_SECRET_KEY", "DJANGO_DEBUG")


@pytest.mark.parametrize(
    "weak_key",
    [
        "change-me-to-50-random-characters",  # the placeholder of docs/deployment.md
        "short-secret",
        "django-insecure-" + "x1y2z3" * 10,
        "ab" * 40,  # long, but only two different characters
    ],
)
def test_manage_py_refuses_a_weak_secret_key_when_debug_is_off(weak_key):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_DIR,
        env=env_with(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=weak_key),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert_one_line_naming(result.stderr, "DJANGO_SECRET_KEY", "not a real secret")
    assert weak_key not in result.stderr  # a secret, even a bad one, is never echoed


def test_manage_py_check_passes_with_good_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_DIR,
        env=env_with(
            JOB_OVERRIDES='{"stayy.purge_job_runs": {"interval": 5}}',
            JOB_ENABLE="0",
            DATABASE_URL=f"sqlite:///{tmp_path / 'check.sqlite3'}",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def run_gunicorn(**changes: str) -> subprocess.CompletedProcess[str]:
    env = env_with(**{"GUNICORN_BIND": f"127.0.0.1:{free_port()}", "GUNICORN_WORKERS": "1", **changes})
    return subprocess.run(
        [str(BIN_DIR / "gunicorn"), "-c", "gunicorn.conf.py"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,  # it must stop by itself, long before this
    )


@pytest.mark.processes
@pytest.mark.parametrize(
    ("changes", "setting", "detail"),
    [
        *BAD_SETTINGS[:1],
        BAD_SETTINGS[3],
        BAD_SETTINGS[4],
        pytest.param({"GUNICORN_WORKERS": "0"}, "GUNICORN_WORKERS", "0", id="gunicorn-workers-0"),
        pytest.param({"GUNICORN_TIMEOUT": "soon"}, "GUNICORN_TIMEOUT", "soon", id="gunicorn-timeout"),
        pytest.param(
            {"GUNICORN_WORKERS": "two"}, "GUNICORN_WORKERS", "two", id="gunicorn-workers-not-a-number"
        ),
    ],
)
def test_gunicorn_fails_fast_with_one_line(changes, setting, detail):
    started = time.monotonic()
    result = run_gunicorn(**changes)
    assert time.monotonic() - started < 15, "gunicorn took long to give up"
    assert result.returncode != 0, result.stderr
    assert_one_line_naming(result.stderr, setting, detail)

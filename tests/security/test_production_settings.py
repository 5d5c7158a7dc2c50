"""Production settings: ``check --deploy`` leaves only the warnings the docs explain, and the HTTPS
and proxy settings read from the environment do what docs/deployment.md says."""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, override_settings

from tests.observability.support import child_env, gunicorn, this_run_database_url
from tests.support import PROJECT_DIR

# What `DJANGO_DEBUG=0 manage.py check --deploy` still reports with the defaults, and why
# (docs/deployment.md, "Settings"): HTTPS redirect and HSTS depend on the proxy in front.
EXPLAINED_WARNINGS = {"security.W004", "security.W008"}

ALL_ON = {
    "DJANGO_SECURE_SSL_REDIRECT": "1",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "DJANGO_SECURE_HSTS_PRELOAD": "1",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto: https",
    "DJANGO_USE_X_FORWARDED_HOST": "1",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://api.example.com,https://*.example.org",
    "DJANGO_TRUSTED_PROXIES": "1",
}


def production_env(tmp_path: Path, **changes: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "JOB_", "DJANGO_", "AUTH_", "API_DOCS"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="api.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
        REDIS_URL="redis://127.0.0.1:6379/5",
        METRICS_TOKEN=secrets.token_urlsafe(24),
    )
    env.update(changes)
    return env


def run_manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def check_ids(output: str) -> set[str]:
    return set(re.findall(r"^\?: \(([\w.]+)\)", output, flags=re.MULTILINE))


def test_check_deploy_leaves_only_the_explained_warnings(tmp_path):
    result = run_manage(production_env(tmp_path), "check", "--deploy")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert check_ids(output) == EXPLAINED_WARNINGS, output


def test_check_deploy_is_clean_with_https_and_hsts_switched_on(tmp_path):
    result = run_manage(production_env(tmp_path, **ALL_ON), "check", "--deploy")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert check_ids(output) == set(), output
    assert "no issues" in output


def test_the_environment_reaches_the_settings(tmp_path):
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'redirect': s.SECURE_SSL_REDIRECT, 'hsts': s.SECURE_HSTS_SECONDS,"
        "'sub': s.SECURE_HSTS_INCLUDE_SUBDOMAINS, 'preload': s.SECURE_HSTS_PRELOAD,"
        "'proxy': s.SECURE_PROXY_SSL_HEADER, 'xfh': s.USE_X_FORWARDED_HOST,"
        "'origins': s.CSRF_TRUSTED_ORIGINS, 'session': s.SESSION_COOKIE_SECURE,"
        "'csrf': s.CSRF_COOKIE_SECURE, 'proxies': s.REST_FRAMEWORK['NUM_PROXIES'],"
        "'limits': [s.AXES_FAILURE_LIMIT, s.SIGN_IN_ADDRESS_FAILURE_LIMIT,"
        " s.AXES_COOLOFF_TIME.total_seconds()],"
        "'token_days': s.REST_KNOX['TOKEN_TTL'].days}))"
    )
    limits = {"AUTH_FAILURE_LIMIT": "7", "AUTH_ADDRESS_FAILURE_LIMIT": "70", "AUTH_LOCKOUT_SECONDS": "60"}
    on = run_manage(production_env(tmp_path, **ALL_ON, **limits, API_TOKEN_TTL_DAYS="7"), "shell", "-c", code)
    assert on.returncode == 0, on.stderr
    assert json.loads(on.stdout.strip().splitlines()[-1]) == {
        "redirect": True,
        "hsts": 31536000,
        "sub": True,
        "preload": True,
        "proxy": ["HTTP_X_FORWARDED_PROTO", "https"],
        "xfh": True,
        "origins": ["https://api.example.com", "https://*.example.org"],
        "session": True,
        "csrf": True,
        "proxies": 1,
        "limits": [7, 70, 60.0],
        "token_days": 7,
    }
    defaults = run_manage(production_env(tmp_path), "shell", "-c", code)
    assert defaults.returncode == 0, defaults.stderr
    assert json.loads(defaults.stdout.strip().splitlines()[-1]) == {
        "redirect": False,
        "hsts": 0,
        "sub": False,
        "preload": False,
        "proxy": None,
        "xfh": False,
        "origins": [],
        "session": True,  # secure cookies are the default without debug
        "csrf": True,
        "proxies": 0,
        "limits": [5, 50, 900.0],
        "token_days": 30,
    }


def test_debug_mode_keeps_cookies_usable_over_plain_http():
    # The suite runs with DJANGO_DEBUG=1, like `make run` on http://127.0.0.1:8000.
    assert os.environ.get("DJANGO_DEBUG") == "1"
    assert (settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE) == (False, False)


@pytest.mark.django_db
@override_settings(
    SECURE_SSL_REDIRECT=True,
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    SECURE_HSTS_SECONDS=31536000,
    SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
)
def test_redirect_spares_the_probes_and_trusts_the_proxy_header():
    client = Client()
    # Plain HTTP to the API: redirected to HTTPS.
    redirected = client.get("/api/users/me/")
    assert redirected.status_code == 301
    assert redirected["Location"] == "https://testserver/api/users/me/"
    # Probes and scrapers on the host's address over plain HTTP: answered, not redirected.
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code in (401, 404)
    # HTTPS at the proxy, plain HTTP behind it: served, with HSTS.
    behind_proxy = client.get("/api/users/me/", HTTP_X_FORWARDED_PROTO="https")
    assert behind_proxy.status_code == 401
    assert behind_proxy["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


@pytest.mark.django_db
@override_settings(
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    USE_X_FORWARDED_HOST=True,
    ALLOWED_HOSTS=["api.example.com"],
)
def test_links_built_behind_the_proxy_use_its_scheme_and_host(staff_user, plain_user):
    client = Client()
    client.force_login(staff_user)
    response = client.get(
        "/api/users/?page_size=1",
        HTTP_HOST="gunicorn.internal:8000",
        HTTP_X_FORWARDED_HOST="api.example.com",
        HTTP_X_FORWARDED_PROTO="https",
    )
    assert response.status_code == 200, response.content
    assert response.json()["next"].startswith("https://api.example.com/api/users/?")


@pytest.mark.django_db
@override_settings(
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    CSRF_TRUSTED_ORIGINS=["https://api.example.com"],
    ALLOWED_HOSTS=["api.example.com", "testserver"],
)
def test_admin_login_over_a_tls_proxy_passes_the_csrf_origin_check(django_user_model):
    django_user_model.objects.create_superuser(
        username="root", email="root@example.com", password="root-pass-123"
    )
    client = Client(enforce_csrf_checks=True)
    login_page = client.get("/admin/login/", HTTP_HOST="api.example.com", HTTP_X_FORWARDED_PROTO="https")
    token = login_page.cookies["csrftoken"].value
    response = client.post(
        "/admin/login/",
        {"username": "root", "password": "root-pass-123", "csrfmiddlewaretoken": token, "next": "/admin/"},
        HTTP_HOST="api.example.com",
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_ORIGIN="https://api.example.com",
        HTTP_REFERER="https://api.example.com/admin/login/",
    )
    assert response.status_code == 302, response.content[:300]
    assert response["Location"] == "/admin/"


def raw_get(port: int, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    """One request, no redirects followed (urllib would chase the https:// Location)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_gunicorn_without_debug_applies_the_https_settings_from_the_environment(tmp_path):
    env = child_env(
        DATABASE_URL=this_run_database_url(),
        GUNICORN_WORKERS="1",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="api.example.com,127.0.0.1",
        **{key: value for key, value in ALL_ON.items() if "HSTS_" not in key or key.endswith("SECONDS")},
    )
    with gunicorn(env=env, log_path=tmp_path / "gunicorn.log") as server:
        plain = raw_get(server.port, "/api/users/me/", {"Host": "api.example.com"})
        assert plain.status == 301
        assert plain.getheader("Location") == "https://api.example.com/api/users/me/"

        for probe in ("/healthz", "/readyz"):
            assert raw_get(server.port, probe, {"Host": "127.0.0.1"}).status == 200, probe

        proxied = raw_get(
            server.port, "/api/users/me/", {"Host": "api.example.com", "X-Forwarded-Proto": "https"}
        )
        assert proxied.status == 401  # served (no token), not redirected
        assert proxied.getheader("Strict-Transport-Security") == "max-age=31536000"

        login = raw_get(
            server.port, "/admin/login/", {"Host": "api.example.com", "X-Forwarded-Proto": "https"}
        )
        assert login.status == 200
        cookie = login.getheader("Set-Cookie") or ""
        assert "csrftoken=" in cookie and "Secure" in cookie

"""Job names and overrides from HTTP and the command line are looked up in the registry, nothing more.

A name is a key into the registry: it is never imported, evaluated or
unpickled. Hostile names get a 404 from the API, exit code 2 and one line from
``runjobs --run``, and leave no trace (no run row, no catalog row, no module
imported).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from config.env import ConfigError
from stayy.models import Job, JobRun
from stayy.scheduling import registry
from tests.support import PROJECT_DIR

# Stdlib modules nothing in the service imports: if a name were ever imported, they would show up.
UNIMPORTED = ("tabnanny", "wave", "xdrlib")

HOSTILE = [
    "os.system",
    "os.path.join",
    "subprocess.run",
    "tabnanny.check",
    "wave.open",
    "xdrlib.Packer",
    "builtins.eval",
    "__import__('os').system('id')",
    "stayy.jobs.purge_job_runs",  # the module path of a real handler
    "users.jobs.sync_third_party_users",
    "stayy.purge_job_runs.__class__",
    "stayy.purge_job_runs ",
    "STAYY.PURGE_JOB_RUNS",
    "..",
    "...",
    "-",
    "a" * 5000,
    "cos\nsystem\n(S'id'\ntR.",  # a pickle
    "{{7*7}}",
    "%s%s%s%n",
]


@pytest.fixture
def staff_api(staff_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(staff_user)
    return client


def assert_nothing_happened(before: dict[str, Any]) -> None:
    assert JobRun.objects.count() == before["runs"]
    assert set(Job.objects.values_list("name", flat=True)) <= before["jobs"] | set(registry.job_names())
    for module in UNIMPORTED:
        assert module not in sys.modules, f"{module} was imported"


@pytest.fixture
def before(db) -> dict[str, Any]:
    for module in UNIMPORTED:
        assert module not in sys.modules, f"{module} is already imported; pick another sentinel"
    return {"runs": JobRun.objects.count(), "jobs": set(Job.objects.values_list("name", flat=True))}


def quoted(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


@pytest.mark.parametrize("name", HOSTILE, ids=lambda name: repr(name)[:40])
def test_the_jobs_api_answers_404_for_hostile_names(staff_api, before, name):
    base = f"/api/jobs/{quoted(name)}/"
    calls = [
        ("get", base),
        ("get", f"{base}runs/"),
        ("get", f"{base}runs/1/"),
        ("post", f"{base}run/"),
        ("post", f"{base}pause/"),
        ("post", f"{base}resume/"),
    ]
    for method, url in calls:
        response = getattr(staff_api, method)(url)
        assert response.status_code == 404, (method, url[:80], response.status_code)
        body = response.content.decode(errors="replace")
        assert "Traceback" not in body
        if response["Content-Type"].startswith("application/json"):
            assert "unknown job" in response.json()["detail"] or "Not found" in response.json()["detail"]
            assert len(body) < 2000, "the answer echoes a long name back in full"
    assert_nothing_happened(before)


def test_path_traversal_in_the_job_segment_never_reaches_another_route(staff_api, before):
    for url in ("/api/jobs/../users/", "/api/jobs/%2e%2e/users/", "/api/jobs/..%2Fusers/"):
        response = staff_api.get(url)
        assert response.status_code == 404, url
    assert_nothing_happened(before)


def test_a_bad_filter_on_the_runs_is_a_400_not_a_500(staff_api):
    response = staff_api.get("/api/jobs/stayy.purge_job_runs/runs/?status=<script>&trigger=os.system")
    assert response.status_code == 400
    assert set(response.json()) == {"status", "trigger"}


def runjobs_run(name: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("runjobs", "--run", name, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", HOSTILE, ids=lambda name: repr(name)[:40])
def test_runjobs_run_exits_2_with_one_line_for_hostile_names(before, name):
    code, out, err = runjobs_run(name)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[:500]
    assert lines[0].startswith("unknown job ")
    assert "stayy.purge_job_runs" in lines[0]  # lists the jobs that exist
    assert len(lines[0]) < 1000
    assert_nothing_happened(before)


def test_runjobs_run_in_a_real_process_exits_2_with_one_line(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "JOB_"))}
    # A database nobody migrated: the name is refused before anything touches it.
    env.update(DJANGO_DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'untouched.sqlite3'}")
    result = subprocess.run(
        [sys.executable, "manage.py", "runjobs", "--run", "os.system"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"unknown job 'os.system'; known jobs: {', '.join(registry.job_names())}"
    ]


def test_runjobs_run_with_an_empty_name_is_refused_not_served(tmp_path):
    """``--run ""`` must not fall through to the job server (which would run until killed)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "JOB_"))}
    env.update(DJANGO_DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'untouched.sqlite3'}")
    try:
        result = subprocess.run(
            [sys.executable, "manage.py", "runjobs", "--run", ""],
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail('runjobs --run "" started the job server instead of refusing the empty name')
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"os.system": {"interval": 5}}, "unknown job 'os.system'"),
        ({"stayy.jobs.purge_job_runs": {}}, "unknown job"),
        ({"a" * 5000: {}}, "5000 characters"),
        ({"stayy.purge_job_runs": {"handler": "os.system"}}, "unknown override key(s) 'handler'"),
        ({"stayy.purge_job_runs": {"module": "tabnanny"}}, "unknown override key(s) 'module'"),
        ({"stayy.purge_job_runs": {"interval": "__import__('os').system('id')"}}, "interval"),
        ({"stayy.purge_job_runs": {"cron": "__import__('os')"}}, "5 fields"),
        ({"stayy.purge_job_runs": {"cron": "* * * * *", "timezone": "../../etc/passwd"}}, "time zone"),
        ({"stayy.purge_job_runs": {"cron": "* * * * *", "timezone": "/etc/localtime"}}, "time zone"),
        ({"stayy.purge_job_runs": {"enabled": "__import__('os')"}}, "enabled"),
        ({"stayy.purge_job_runs": {"timeout": {"__reduce__": "os.system"}}}, "timeout"),
    ],
)
def test_hostile_overrides_are_config_errors_and_import_nothing(restore_registry, overrides, expected):
    with pytest.raises(ConfigError) as info:
        registry.apply_overrides(overrides)
    assert info.value.name == "JOB_OVERRIDES"
    assert expected in str(info.value)
    assert len(str(info.value)) < 1000
    for module in UNIMPORTED:
        assert module not in sys.modules

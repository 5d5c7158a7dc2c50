"""The upstream client's settings: defaults, and a bad value stops ``manage.py`` with one line naming it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.jobs.test_config_errors import assert_one_line_naming, env_with
from tests.support import PROJECT_DIR

DEFAULTS = {
    "THIRD_PARTY_USERS_CONNECT_TIMEOUT": 5.0,
    "THIRD_PARTY_USERS_READ_TIMEOUT": 30.0,
    "THIRD_PARTY_USERS_MAX_RETRIES": 5,
    "THIRD_PARTY_USERS_BACKOFF": 0.5,
    "THIRD_PARTY_USERS_BACKOFF_MAX": 30.0,
    "THIRD_PARTY_USERS_SYNC_PAUSE": 5.0,
    "THIRD_PARTY_USERS_REQUEST_DEADLINE": 60.0,
    "THIRD_PARTY_USERS_MAX_PAGE_BYTES": 16 * 1024 * 1024,
    "THIRD_PARTY_USERS_TOKEN": "",
}


def settings_in_a_child(**env: str | None) -> subprocess.CompletedProcess[str]:
    names = ", ".join(DEFAULTS)
    code = f"from django.conf import settings; print([getattr(settings, n) for n in '{names}'.split(', ')])"
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=PROJECT_DIR,
        env=env_with(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_defaults():
    result = settings_in_a_child(**dict.fromkeys(DEFAULTS))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(list(DEFAULTS.values()))


def test_values_from_the_environment():
    result = settings_in_a_child(
        THIRD_PARTY_USERS_CONNECT_TIMEOUT="2",
        THIRD_PARTY_USERS_READ_TIMEOUT="12.5",
        THIRD_PARTY_USERS_MAX_RETRIES="0",
        THIRD_PARTY_USERS_BACKOFF="0",
        THIRD_PARTY_USERS_BACKOFF_MAX="60",
        THIRD_PARTY_USERS_SYNC_PAUSE="0",
        THIRD_PARTY_USERS_REQUEST_DEADLINE="2.5",
        THIRD_PARTY_USERS_MAX_PAGE_BYTES="65536",
        THIRD_PARTY_USERS_TOKEN="abc.DEF-123",
    )

    assert result.returncode == 0, result.stderr
    expected = [2.0, 12.5, 0, 0.0, 60.0, 0.0, 2.5, 65536, "abc.DEF-123"]
    assert result.stdout.strip().splitlines()[-1] == str(expected)


@pytest.mark.parametrize(
    ("name", "value", "detail"),
    [
        ("THIRD_PARTY_USERS_CONNECT_TIMEOUT", "0", "at least 0.01"),
        ("THIRD_PARTY_USERS_READ_TIMEOUT", "soon", "expected a number"),
        ("THIRD_PARTY_USERS_MAX_RETRIES", "-1", "at least 0"),
        ("THIRD_PARTY_USERS_MAX_RETRIES", "2.5", "whole number"),
        ("THIRD_PARTY_USERS_BACKOFF", "-0.5", "at least 0"),
        ("THIRD_PARTY_USERS_BACKOFF_MAX", "inf", "finite"),
        ("THIRD_PARTY_USERS_SYNC_PAUSE", "-1", "at least 0"),
        ("THIRD_PARTY_USERS_SYNC_PAUSE", "a bit", "expected a number"),
        ("THIRD_PARTY_USERS_REQUEST_DEADLINE", "0", "at least 0.01"),
        ("THIRD_PARTY_USERS_MAX_PAGE_BYTES", "100", "at least 1024"),
        ("THIRD_PARTY_USERS_TOKEN", "two words", "visible ASCII"),
    ],
)
def test_a_bad_value_stops_manage_py_with_one_line(name, value, detail):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_DIR,
        env=env_with(**{name: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert_one_line_naming(result.stderr, name, detail)


def test_credentials_of_a_bad_url_are_masked_in_the_startup_error():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_DIR,
        env=env_with(THIRD_PARTY_USERS_URL="ftp://ann:pa55word@upstream.example"),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert_one_line_naming(result.stderr, "THIRD_PARTY_USERS_URL", "ftp://***@upstream.example")
    assert "pa55word" not in result.stderr


def test_a_token_and_credentials_in_the_url_are_refused_together():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_DIR,
        env=env_with(THIRD_PARTY_USERS_URL="https://ann:pa55@upstream.example", THIRD_PARTY_USERS_TOKEN="t"),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert_one_line_naming(result.stderr, "THIRD_PARTY_USERS_TOKEN", "credentials too")

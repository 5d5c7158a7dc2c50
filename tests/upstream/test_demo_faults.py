"""The demo upstream's fault injection (``/v1/_admin/faults``, ``--faults``), over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.support import PROJECT_DIR
from tests.upstream.conftest import HTTP

pytestmark = pytest.mark.processes


def feed(url: str) -> httpx.Response:
    return HTTP.get(f"{url}/v1/users/changes", params={"limit": 10})


def test_each_fault_answers_as_documented_and_then_the_feed_is_normal(upstream_url, faults):
    state = faults(
        {"fault": "error", "status": 503, "times": 2},
        {"fault": "throttle", "retry_after": 2},
        {"fault": "throttle", "retry_after": "Wed, 21 Oct 2037 07:28:00 GMT"},
        {"fault": "throttle"},
        {"fault": "truncate"},
        {"fault": "malformed"},
        {"fault": "ok"},
        {"fault": "drop"},
    )
    assert state["next"][0] == {"fault": "error", "times": 2, "status": 503}

    errors = [feed(upstream_url) for _ in range(2)]
    assert [response.status_code for response in errors] == [503, 503]
    assert errors[0].json() == {"error": "injected", "message": "injected fault: HTTP 503"}
    throttled = [feed(upstream_url) for _ in range(3)]
    assert [response.status_code for response in throttled] == [429, 429, 429]
    assert [response.headers.get("Retry-After") for response in throttled] == [
        "2",
        "Wed, 21 Oct 2037 07:28:00 GMT",
        None,
    ]
    truncated = feed(upstream_url)
    assert truncated.status_code == 200
    assert int(truncated.headers["Content-Length"]) == len(truncated.content)
    with pytest.raises(ValueError):
        truncated.json()
    malformed = feed(upstream_url).json()
    assert malformed["users"][0] == {"id": 42, "updated_at": "yesterday", "deleted": "no"}
    assert [user["id"] for user in malformed["users"][1:]] == [f"u{index:06d}" for index in range(1, 11)]
    assert feed(upstream_url).json()["users"][0]["id"] == "u000001"  # "ok"
    with pytest.raises(httpx.RemoteProtocolError):
        feed(upstream_url)

    assert feed(upstream_url).json()["users"][0]["id"] == "u000001"
    assert HTTP.get(f"{upstream_url}/v1/_admin/faults").json() == {
        "next": [],
        "delay": 0.0,
        "served": {"error": 2, "throttle": 3, "truncate": 1, "malformed": 1, "ok": 1, "drop": 1, "page": 1},
    }


def test_faults_hit_only_the_feed(upstream_url, faults):
    faults({"fault": "error"})

    assert HTTP.post(f"{upstream_url}/v1/_admin/touch", json={"ids": ["u000001"]}).status_code == 200
    assert HTTP.get(f"{upstream_url}/v1/_admin/faults").status_code == 200
    assert feed(upstream_url).status_code == 500


def test_slow_and_delay_hold_the_answer_back(upstream_url, faults):
    faults({"fault": "slow", "seconds": 0.5}, delay=0.2)

    started = time.monotonic()
    assert feed(upstream_url).status_code == 200
    slow = time.monotonic() - started
    started = time.monotonic()
    assert feed(upstream_url).status_code == 200
    delayed = time.monotonic() - started

    assert slow >= 0.7
    assert delayed >= 0.2
    assert faults.served() == {"slow": 1, "page": 1}


def test_a_new_plan_replaces_the_old_one_and_a_reset_clears_it(upstream_url, faults):
    faults({"fault": "error", "times": 5}, delay=0.1)
    faults({"fault": "drop"})
    state = HTTP.get(f"{upstream_url}/v1/_admin/faults").json()
    assert state == {"next": [{"fault": "drop", "times": 1}], "delay": 0.0, "served": {}}

    HTTP.post(f"{upstream_url}/v1/_admin/reset").raise_for_status()
    assert HTTP.get(f"{upstream_url}/v1/_admin/faults").json() == {"next": [], "delay": 0.0, "served": {}}
    assert feed(upstream_url).status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"next": [{"fault": "explode"}]}, "next[0].fault must be one of"),
        ({"next": [{"fault": "error", "status": 404}]}, "next[0].status must be from 500 to 599"),
        ({"next": [{"fault": "error", "times": 0}]}, "next[0].times must be a whole number"),
        ({"next": [{"fault": "drop", "status": 500}]}, "next[0]: unknown keys for drop: status"),
        ({"next": [{"fault": "slow", "seconds": -1}]}, "next[0].seconds must be a number of seconds"),
        ({"next": [{"fault": "throttle", "retry_after": True}]}, "next[0].retry_after must be"),
        ({"next": {"fault": "error"}}, "next must be a list"),
        ({"delay": "1"}, "delay must be a number of seconds"),
        ({"later": []}, "unknown keys: later"),
    ],
)
def test_a_bad_plan_is_a_400_and_changes_nothing(upstream_url, faults, body, message):
    faults({"fault": "ok"})

    response = HTTP.post(f"{upstream_url}/v1/_admin/faults", json=body)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_body"
    assert message in response.json()["message"]
    assert HTTP.get(f"{upstream_url}/v1/_admin/faults").json()["next"] == [{"fault": "ok", "times": 1}]


def test_the_faults_endpoint_takes_get_and_post_only(upstream_url):
    response = HTTP.delete(f"{upstream_url}/v1/_admin/faults")

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"


def test_touch_can_set_a_display_name(upstream_url, touch):
    end = HTTP.get(f"{upstream_url}/v1/users/changes", params={"limit": 1000}).json()["next_cursor"]

    touch(ids=["u000002"], display_name="x" * 200)

    users = HTTP.get(f"{upstream_url}/v1/users/changes", params={"cursor": end}).json()["users"]
    assert [(user["id"], user["display_name"]) for user in users] == [("u000002", "x" * 200)]
    bad = HTTP.post(f"{upstream_url}/v1/_admin/touch", json={"share": 0.1, "display_name": "x"})
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_body")


def demo_command(*args: str) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "JOB_"))}
    return subprocess.Popen(
        [sys.executable, "manage.py", "demo_upstream", "--port", "0", "--users", "20", *args],
        cwd=PROJECT_DIR,
        env={**env, "JOB_ENABLE": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_command_starts_with_a_fault_plan():
    process = demo_command("--faults", '{"next": [{"fault": "error", "status": 502}], "delay": 0.05}')
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.split()[-1]
        assert url.startswith("http://127.0.0.1:"), line
        assert HTTP.get(f"{url}/v1/_admin/faults").json() == {
            "next": [{"fault": "error", "times": 1, "status": 502}],
            "delay": 0.05,
            "served": {},
        }
        assert feed(url).status_code == 502
        assert feed(url).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(
    ("faults_arg", "message"),
    [("not json", "--faults: Expecting value"), ('{"delay": -1}', "--faults: delay must be a number")],
)
def test_the_command_rejects_a_bad_fault_plan_with_one_line(faults_arg, message):
    process = demo_command("--faults", faults_arg)
    _out, err = process.communicate(timeout=60)

    assert process.returncode != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"CommandError: {message}")

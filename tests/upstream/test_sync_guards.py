"""Poison records and a hung upstream (issue 17), over real HTTP from the demo upstream into real PostgreSQL.

A record the database cannot store is rejected with its id and reason, the rest
of its page applies and the cursor moves on; a page that breaks the contract
fails the run; every request ends by its deadline, reads at most the byte cap,
stops when asked, sends the token, and never shows the URL's credentials.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from django.db import connection

from stayy.models import JobRun
from tests.jobs.support import run_manage, run_rows, subprocess_env
from tests.upstream.conftest import DEMO_LIVE_USERS, DEMO_USERS, HTTP
from users.models import User
from users.repository import sync_state, upstream
from users.services import sync as sync_service

pytestmark = [pytest.mark.processes, pytest.mark.django_db]

PAGE_SIZE = 100
JOB = "users.sync_third_party_users"
UNSTORABLE = "a character the database cannot store (NUL or a lone surrogate)"


def sync(**options):
    options.setdefault("should_stop", lambda: False)
    options.setdefault("page_size", PAGE_SIZE)
    return sync_service.user_sync_from_upstream(**options)


def touch_raw(url: str, body: dict) -> None:
    """``/v1/_admin/touch`` with the body as ASCII JSON (a lone surrogate cannot be sent as UTF-8)."""
    response = HTTP.post(
        f"{url}/v1/_admin/touch", content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text


def at_the_end() -> bool:
    stored = sync_state.get_cursor(sync_service.SYNC_CURSOR_NAME)
    return upstream.fetch_changes(cursor=stored, limit=1).users == []


def mirrored() -> int:
    return User.objects.filter(source=User.Source.THIRD_PARTY).count()


# --- poison records ---


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("display_name", "Ann\x00Lee", f"display_name holds {UNSTORABLE}"),
        ("email", "\ud800x@example.com", f"email holds {UNSTORABLE}"),
        ("email", "ann@exa\ud800mple.com", f"email holds {UNSTORABLE}"),
        ("email", "ann\x00@example.com", f"email holds {UNSTORABLE}"),
    ],
    ids=["nul-display-name", "surrogate-email", "surrogate-email-domain", "nul-email"],
)
def test_a_record_the_database_cannot_store_is_rejected_and_the_sync_moves_on(
    upstream_url, field, value, reason, caplog
):
    touch_raw(upstream_url, {"ids": ["u000003"], field: value})

    with caplog.at_level(logging.WARNING, logger="users.sync"):
        first = sync()
    second = sync()

    assert first["rejected"] == 1
    assert first["created"] == DEMO_LIVE_USERS - 1
    assert first["rejects"] == [{"id": "u000003", "reason": reason}]
    assert f"upstream user u000003 rejected: {reason}" in caplog.text
    assert mirrored() == DEMO_LIVE_USERS - 1
    assert at_the_end()
    assert second["pages"] == 1 and second["created"] == 0  # the next run starts after it


def test_an_id_the_database_cannot_store_is_rejected_and_shown_escaped(upstream_url, scripted_upstream):
    users = [
        {"id": "bad\x00id", "updated_at": "2026-01-01T00:00:00+00:00", "deleted": True},
        {
            "id": "good",
            "updated_at": "2026-01-01T00:00:01+00:00",
            "deleted": False,
            "email": "good@example.com",
            "display_name": "Good",
        },
    ]
    body = json.dumps({"users": users, "next_cursor": "c1", "has_more": False}).encode()
    scripted_upstream.script = [(200, "application/json", body)]

    result = sync()

    assert (result["created"], result["rejected"]) == (1, 1)
    assert result["rejects"] == [{"id": "bad\\x00id", "reason": f"id holds {UNSTORABLE}"}]
    assert sync_state.get_cursor(sync_service.SYNC_CURSOR_NAME) == "c1"


def test_emails_are_compared_the_way_the_database_compares_them(upstream_url):
    """``İ`` lower-cases to ``i̇`` in Python, and to ``i`` in PostgreSQL (the unique index's lower())."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT lower(%s) = lower(%s)", ["İx@upstream.example", "ix@upstream.example"])
        assert cursor.fetchone()[0], "the database's lower() must fold İ to i for this test"
    assert "İx@upstream.example".lower() != "ix@upstream.example"
    touch_raw(upstream_url, {"ids": ["u000003"], "email": "ix@upstream.example"})
    touch_raw(upstream_url, {"ids": ["u000004"], "email": "İx@upstream.example"})

    result = sync()

    assert result["rejects"] == [{"id": "u000004", "reason": "its email is used by another user"}]
    assert User.objects.get(external_id="u000003").email == "ix@upstream.example"
    assert not User.objects.filter(external_id="u000004").exists()
    assert at_the_end()


# --- pages that break the contract ---


def test_a_page_with_more_records_than_the_limit_fails_the_run(upstream_url, faults):
    faults({"fault": "ok"}, {"fault": "oversize"})

    too_many = rf"returned \d+ users, more than the limit of {PAGE_SIZE}"
    with pytest.raises(upstream.UpstreamError, match=too_many):
        sync()

    assert mirrored() == PAGE_SIZE - PAGE_SIZE // 50  # the first page only
    assert not at_the_end()


def test_a_page_over_the_byte_cap_fails_the_run(upstream_url, settings):
    settings.THIRD_PARTY_USERS_MAX_PAGE_BYTES = 4096  # a page of 100 demo users is about 15 KB

    with pytest.raises(upstream.UpstreamError, match=r"too large.*THIRD_PARTY_USERS_MAX_PAGE_BYTES"):
        sync()

    assert mirrored() == 0


# --- a hung upstream ---


def test_a_trickling_answer_ends_by_the_request_deadline(upstream_url, faults, settings):
    settings.THIRD_PARTY_USERS_REQUEST_DEADLINE = 1.0
    settings.THIRD_PARTY_USERS_MAX_RETRIES = 0
    faults({"fault": "trickle", "seconds": 2})  # headers at once, then a byte every 2 s
    started = time.monotonic()

    with pytest.raises(upstream.UpstreamError, match=r"did not complete within 1 s"):
        sync()

    # One attempt, cut at its deadline; the generous bound only excludes waiting for the body.
    assert time.monotonic() - started < settings.THIRD_PARTY_USERS_REQUEST_DEADLINE + 5
    assert mirrored() == 0


def test_a_stop_cuts_a_transfer_short(upstream_url, faults, settings):
    settings.THIRD_PARTY_USERS_REQUEST_DEADLINE = 600
    faults({"fault": "trickle", "seconds": 0.5})
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()

    result = sync(should_stop=stop.is_set)

    assert result["pages"] == 0
    assert time.monotonic() - started < 10  # not the deadline, nor the body's minutes


# --- credentials ---


def test_the_token_is_sent_as_a_bearer_token(upstream_url, settings):
    HTTP.post(f"{upstream_url}/v1/_admin/reset", json={"users": DEMO_USERS, "token": "s3cret-token"})

    with pytest.raises(upstream.UpstreamError, match="HTTP 401"):
        sync()
    settings.THIRD_PARTY_USERS_TOKEN = "s3cret-token"
    result = sync()

    assert result["created"] == DEMO_LIVE_USERS


@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_credentials_in_the_url_are_masked_in_the_run_error_traceback_and_log(upstream_url, faults):
    faults({"fault": "error", "status": 503, "times": 10})
    with_credentials = upstream_url.replace("http://", "http://ann:pa55word@")

    result = run_manage(
        "runjobs",
        "--run",
        JOB,
        env=subprocess_env(THIRD_PARTY_USERS_URL=with_credentials, THIRD_PARTY_USERS_MAX_RETRIES="1"),
        timeout=90,
    )

    assert result.returncode == 1
    (run,) = run_rows(job_name=JOB)
    assert run.status == JobRun.Status.FAILED
    masked = upstream_url.replace("http://", "http://***@")
    assert f"GET {masked}/v1/users/changes" in run.error
    assert f"{masked}/v1/users/changes" in run.log
    for shown in (run.error, run.traceback, run.log, result.stdout, result.stderr):
        assert "pa55word" not in shown
        assert "ann:" not in shown

"""The upstream client: typed pages from the real demo process, retries, and UpstreamError for the rest.

The retry waits are those of ``FAST_RETRIES`` (conftest) unless a test sets
its own: 3 retries, backoff from 0.01 s, at most 0.05 s.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from users.repository import upstream, upstream_http
from users.repository.upstream import ChangesPage, UpstreamError, UpstreamStopped, UpstreamUser

GOOD_PAGE = json.dumps(
    {
        "users": [
            {
                "id": "a1",
                "email": "a1@example.com",
                "display_name": "A",
                "updated_at": "2025-05-01T10:00:00+02:00",
                "deleted": False,
            }
        ],
        "next_cursor": "c1",
        "has_more": False,
    }
).encode()


@pytest.mark.processes
def test_fetch_changes_returns_typed_pages(upstream_url):
    page = upstream.fetch_changes(cursor="", limit=60)

    assert isinstance(page, ChangesPage)
    assert len(page.users) == 60
    assert page.has_more is True
    assert page.users[0] == UpstreamUser(
        id="u000001",
        updated_at=datetime(2024, 1, 1, 0, 1, tzinfo=UTC),
        deleted=False,
        email="user000001@upstream.example",
        display_name="User 000001",
    )
    assert page.users[49] == UpstreamUser(
        id="u000050",
        updated_at=datetime(2024, 1, 1, 0, 50, tzinfo=UTC),
        deleted=True,
        email=None,
        display_name=None,
    )
    following = upstream.fetch_changes(cursor=page.next_cursor, limit=60)
    assert following.users[0].id == "u000061"


@pytest.mark.processes
def test_an_http_error_names_the_status_and_the_url(upstream_url):
    with pytest.raises(UpstreamError) as caught:
        upstream.fetch_changes(cursor="not-a-cursor", limit=10)

    assert caught.value.status == 400
    assert caught.value.url.startswith(f"{upstream_url}/v1/users/changes?")
    assert "HTTP 400" in str(caught.value)
    assert upstream_url in str(caught.value)
    assert "invalid_cursor" in str(caught.value)


def test_the_client_is_shared_and_rebuilt_after_a_fork_or_a_new_url(settings, monkeypatch):
    settings.THIRD_PARTY_USERS_URL = "http://upstream-a.example"
    first = upstream.get_client()
    assert upstream.get_client() is first
    assert str(first.base_url) == "http://upstream-a.example"

    parent_pid = os.getpid()
    monkeypatch.setattr(upstream_http.os, "getpid", lambda: parent_pid + 1)
    in_child = upstream.get_client()
    assert in_child is not first
    # The parent still owns the inherited client's sockets: it must stay open.
    assert not first.is_closed

    settings.THIRD_PARTY_USERS_URL = "http://upstream-b.example/api"
    moved = upstream.get_client()
    assert moved is not in_child
    assert str(moved.base_url) == "http://upstream-b.example/api/"
    assert in_child.is_closed


def test_an_unset_url_is_an_upstream_error(settings):
    settings.THIRD_PARTY_USERS_URL = ""

    with pytest.raises(UpstreamError, match="THIRD_PARTY_USERS_URL is not set"):
        upstream.fetch_changes(cursor="", limit=10)


def test_a_page_from_any_upstream_with_offsets_is_parsed(scripted_upstream):
    scripted_upstream.script = [(200, "application/json", GOOD_PAGE)]

    page = upstream.fetch_changes(cursor="c0", limit=10)

    assert page == ChangesPage(
        users=[
            UpstreamUser(
                id="a1",
                updated_at=datetime(2025, 5, 1, 8, 0, tzinfo=UTC),
                deleted=False,
                email="a1@example.com",
                display_name="A",
            )
        ],
        next_cursor="c1",
        has_more=False,
    )
    assert scripted_upstream.requests == ["GET /v1/users/changes?limit=10&cursor=c0 HTTP/1.1"]


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (400, b'{"error": "invalid_limit"}', "HTTP 400"),
        (401, b"", "HTTP 401"),
        (403, b"<html>forbidden</html>", "HTTP 403"),
        (404, b"", "HTTP 404"),
        (409, b"", "HTTP 409"),
        (200, b'{"users": [], "next_cursor": "", "has_', "malformed page"),  # truncated
        (200, b"<html>not json</html>", "malformed page"),
        (200, b"[]", "not a JSON object"),
        (200, b'{"users": [], "has_more": false}', "next_cursor"),
        (200, b'{"users": {}, "next_cursor": "", "has_more": false}', "users is not a list"),
        (200, b'{"users": [], "next_cursor": "", "has_more": "no"}', "has_more is not a boolean"),
        (200, b'{"users": [1], "next_cursor": "", "has_more": false}', "users[0] is not an object"),
        (
            200,
            b'{"users": [{"id": "a", "updated_at": "yesterday", "deleted": false}],'
            b' "next_cursor": "", "has_more": false}',
            "malformed page",
        ),
        (
            200,
            b'{"users": [{"id": "a", "updated_at": "2025-05-01T10:00:00", "deleted": false}],'
            b' "next_cursor": "", "has_more": false}',
            "no UTC offset",
        ),
        (
            200,
            b'{"users": [{"id": "", "updated_at": "2025-05-01T10:00:00Z", "deleted": false}],'
            b' "next_cursor": "", "has_more": false}',
            "id is not a non-empty string",
        ),
        (
            200,
            b'{"users": [{"id": "a", "updated_at": "2025-05-01T10:00:00Z"}],'
            b' "next_cursor": "", "has_more": false}',
            "deleted is not a boolean",
        ),
    ],
)
def test_a_bad_answer_is_an_upstream_error(scripted_upstream, status, body, message):
    scripted_upstream.script = [(status, "application/json", body)]

    with pytest.raises(UpstreamError) as caught:
        upstream.fetch_changes(cursor="", limit=10)

    assert message in str(caught.value)
    assert caught.value.status == status
    assert f"{scripted_upstream.url}/v1/users/changes?limit=10" in str(caught.value)
    assert len(scripted_upstream.requests) == 1, "other 4xx and bad bodies are not retried"


def test_dropped_connections_are_retried(scripted_upstream):
    scripted_upstream.script = ["drop", "drop", "drop", (200, "application/json", GOOD_PAGE)]

    page = upstream.fetch_changes(cursor="", limit=10)

    assert [user.id for user in page.users] == ["a1"]
    assert len(scripted_upstream.requests) == 4


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_server_errors_and_throttling_are_retried(scripted_upstream, status):
    scripted_upstream.script = [
        (status, "text/html", b"<html>busy</html>"),
        (status, "application/json", b'{"error": "busy"}'),
        (200, "application/json", GOOD_PAGE),
    ]

    page = upstream.fetch_changes(cursor="", limit=10)

    assert [user.id for user in page.users] == ["a1"]
    assert len(scripted_upstream.requests) == 3


def test_after_the_last_retry_the_error_names_url_status_and_attempts(scripted_upstream, settings):
    settings.THIRD_PARTY_USERS_MAX_RETRIES = 2
    scripted_upstream.script = [(503, "text/plain", b"maintenance")] * 3 + [
        (200, "application/json", GOOD_PAGE)
    ]

    with pytest.raises(UpstreamError) as caught:
        upstream.fetch_changes(cursor="", limit=10)

    assert caught.value.status == 503
    assert caught.value.url == f"{scripted_upstream.url}/v1/users/changes?limit=10"
    assert str(caught.value) == (
        f"GET {scripted_upstream.url}/v1/users/changes?limit=10 returned HTTP 503: maintenance"
        " (gave up after 3 attempts)"
    )
    assert len(scripted_upstream.requests) == 3


def test_connection_failures_past_the_retries_are_an_upstream_error(scripted_upstream):
    scripted_upstream.script = ["drop"] * 4 + [(200, "application/json", GOOD_PAGE)]

    with pytest.raises(UpstreamError, match="RemoteProtocolError") as caught:
        upstream.fetch_changes(cursor="", limit=10)

    assert caught.value.status is None
    assert scripted_upstream.url in str(caught.value)
    assert "gave up after 4 attempts" in str(caught.value)
    assert len(scripted_upstream.requests) == 4


def test_no_retries_means_one_attempt(scripted_upstream, settings):
    settings.THIRD_PARTY_USERS_MAX_RETRIES = 0
    scripted_upstream.script = ["drop", (200, "application/json", GOOD_PAGE)]

    with pytest.raises(UpstreamError, match=r"gave up after 1 attempt\)$"):
        upstream.fetch_changes(cursor="", limit=10)
    assert len(scripted_upstream.requests) == 1


def throttled(retry_after: str) -> tuple[int, str, bytes, dict[str, str]]:
    return (429, "application/json", b'{"error": "slow down"}', {"Retry-After": retry_after})


def test_retry_after_in_seconds_is_honoured(scripted_upstream, settings):
    settings.THIRD_PARTY_USERS_BACKOFF_MAX = 30
    scripted_upstream.script = [throttled("1"), (200, "application/json", GOOD_PAGE)]

    upstream.fetch_changes(cursor="", limit=10)

    waited = scripted_upstream.times[1] - scripted_upstream.times[0]
    # At least what the server asked; far less than the 30 s cap (generous for a busy machine).
    assert 1.0 <= waited < 10


def test_retry_after_as_an_http_date_is_honoured(scripted_upstream, settings):
    settings.THIRD_PARTY_USERS_BACKOFF_MAX = 30
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    scripted_upstream.script = [
        throttled(format_datetime(at, usegmt=True)),
        (200, "application/json", GOOD_PAGE),
    ]

    upstream.fetch_changes(cursor="", limit=10)

    # The retry comes at the date, 2 to 3 s after the date was written (the client's own backoff
    # would retry at once), and not at the cap.
    retried_at = datetime.fromtimestamp(scripted_upstream.clock_times[1], UTC)
    assert retried_at >= at - timedelta(seconds=0.05)
    assert scripted_upstream.times[1] - scripted_upstream.times[0] < 10


def test_retry_after_is_capped_by_the_backoff_maximum(scripted_upstream, settings):
    settings.THIRD_PARTY_USERS_BACKOFF_MAX = 0.2
    scripted_upstream.script = [throttled("3600"), (200, "application/json", GOOD_PAGE)]

    upstream.fetch_changes(cursor="", limit=10)

    waited = scripted_upstream.times[1] - scripted_upstream.times[0]
    assert 0.2 <= waited < 10


def test_a_stop_during_a_retry_wait_ends_it_promptly(scripted_upstream, settings):
    settings.THIRD_PARTY_USERS_BACKOFF_MAX = 120
    scripted_upstream.script = [throttled("60"), (200, "application/json", GOOD_PAGE)]
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()

    with pytest.raises(UpstreamStopped):
        upstream.fetch_changes(cursor="", limit=10, should_stop=stop.is_set)

    # Well under the 60 s the server asked for.
    assert time.monotonic() - started < 10
    assert len(scripted_upstream.requests) == 1


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 30.0),
        ("Wed Oct 21 07:28:00 2015", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past: now
        ("-5", None),
        ("nan", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_values(header, seconds):
    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)

    assert upstream.parse_retry_after(header, now=now) == seconds


def test_the_client_uses_the_configured_timeouts(settings):
    settings.THIRD_PARTY_USERS_URL = "http://upstream-a.example"
    settings.THIRD_PARTY_USERS_CONNECT_TIMEOUT = 1.5
    settings.THIRD_PARTY_USERS_READ_TIMEOUT = 7.0

    client = upstream.get_client()

    assert (client.timeout.connect, client.timeout.read) == (1.5, 7.0)
    settings.THIRD_PARTY_USERS_READ_TIMEOUT = 9.0
    assert upstream.get_client().timeout.read == 9.0


def test_a_refused_connection_is_an_upstream_error(closed_port_url):
    with pytest.raises(UpstreamError, match="ConnectError") as caught:
        upstream.fetch_changes(cursor="", limit=10)

    assert closed_port_url in str(caught.value)

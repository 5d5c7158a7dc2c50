"""The upstream client: typed pages from the real demo process, and UpstreamError for everything else."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest

from users.repository import upstream
from users.repository.upstream import ChangesPage, UpstreamError, UpstreamUser

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
    monkeypatch.setattr(upstream.os, "getpid", lambda: parent_pid + 1)
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
        (500, b'{"error": "boom"}', "HTTP 500"),
        (503, b"<html>maintenance</html>", "HTTP 503"),
        (404, b"", "HTTP 404"),
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
    assert len(scripted_upstream.requests) == 1, "HTTP errors are not retried"


def test_a_dropped_connection_is_retried_once(scripted_upstream):
    scripted_upstream.script = ["drop", (200, "application/json", GOOD_PAGE)]

    page = upstream.fetch_changes(cursor="", limit=10)

    assert [user.id for user in page.users] == ["a1"]
    assert len(scripted_upstream.requests) == 2


def test_a_second_connection_failure_is_an_upstream_error(scripted_upstream):
    scripted_upstream.script = ["drop", "drop", (200, "application/json", GOOD_PAGE)]

    with pytest.raises(UpstreamError, match="RemoteProtocolError") as caught:
        upstream.fetch_changes(cursor="", limit=10)

    assert caught.value.status is None
    assert scripted_upstream.url in str(caught.value)
    assert len(scripted_upstream.requests) == 2


def test_a_refused_connection_is_an_upstream_error(closed_port_url):
    with pytest.raises(UpstreamError, match="ConnectError") as caught:
        upstream.fetch_changes(cursor="", limit=10)

    assert closed_port_url in str(caught.value)

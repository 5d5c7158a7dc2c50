"""The demo upstream, over real HTTP, against the contract in docs/upstream.md."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from httpx import Response

from tests.upstream.conftest import DEMO_LIVE_USERS, DEMO_USERS, HTTP, resize

pytestmark = pytest.mark.processes

ALL_IDS = [f"u{index:06d}" for index in range(1, DEMO_USERS + 1)]


def changes(url: str, **params: object) -> Response:
    return HTTP.get(f"{url}/v1/users/changes", params=params)  # type: ignore[arg-type]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def test_the_first_page_lists_users_in_feed_order_with_bare_tombstones(upstream_url):
    response = changes(upstream_url, limit=60)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    users = body["users"]
    assert [user["id"] for user in users] == ALL_IDS[:60]
    assert users[0] == {
        "id": "u000001",
        "email": "user000001@upstream.example",
        "display_name": "User 000001",
        "updated_at": "2024-01-01T00:01:00.000000Z",
        "deleted": False,
    }
    assert users[49] == {"id": "u000050", "updated_at": "2024-01-01T00:50:00.000000Z", "deleted": True}
    assert [user["id"] for user in users if user["deleted"]] == ["u000050"]
    assert body["has_more"] is True
    assert body["next_cursor"]


def test_following_next_cursor_lists_every_user_once(upstream_url):
    cursor, seen, pages = "", [], 0
    while True:
        body = changes(upstream_url, cursor=cursor, limit=120).json()
        pages += 1
        seen += [user["id"] for user in body["users"]]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break

    assert pages == 5
    assert seen == ALL_IDS

    replay = changes(upstream_url, cursor=cursor, limit=120).json()
    assert replay == {"users": [], "next_cursor": cursor, "has_more": False}


def test_the_limit_defaults_to_500_and_goes_up_to_1000(upstream_url):
    resize(upstream_url, 1200)

    default = changes(upstream_url).json()
    assert len(default["users"]) == 500
    assert default["has_more"] is True

    maximum = changes(upstream_url, limit=1000).json()
    assert len(maximum["users"]) == 1000
    assert maximum["has_more"] is True


@pytest.mark.parametrize("limit", ["1001", "5000", "0", "-1", "ten", ""])
def test_a_limit_out_of_range_is_a_400(upstream_url, limit):
    response = changes(upstream_url, limit=limit)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_limit"


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        b64(b"\xff\xfe not json"),
        b64(b'["t", "id"]'),
        b64(json.dumps({"t": "2024-01-01", "id": "u000001"}).encode()),
        b64(json.dumps({"t": 1}).encode()),
        b64(json.dumps({"t": 1, "id": "u000001", "extra": 2}).encode()),
    ],
)
def test_a_malformed_cursor_is_a_400(upstream_url, cursor):
    response = changes(upstream_url, cursor=cursor)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_cursor"


def test_unknown_paths_and_wrong_methods_are_json_errors(upstream_url):
    missing = HTTP.get(f"{upstream_url}/v1/users")
    wrong_method = HTTP.post(f"{upstream_url}/v1/users/changes")

    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")


def test_a_touched_user_moves_to_the_end_with_a_new_revision(upstream_url, touch):
    end = changes(upstream_url, limit=1000).json()["next_cursor"]

    assert touch(ids=["u000010", "u000003"]) == ["u000010", "u000003"]

    after = changes(upstream_url, cursor=end).json()
    assert [user["id"] for user in after["users"]] == ["u000010", "u000003"]
    assert [user["display_name"] for user in after["users"]] == ["User 000010 (rev 1)", "User 000003 (rev 1)"]
    stamps = [user["updated_at"] for user in after["users"]]
    assert stamps == sorted(stamps)
    newest_generated = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=DEMO_USERS)
    assert stamps[0] > newest_generated.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert after["has_more"] is False
    from_start = [user["id"] for user in changes(upstream_url, limit=1000).json()["users"]]
    assert from_start == [user for user in ALL_IDS if user not in ("u000003", "u000010")] + [
        "u000010",
        "u000003",
    ]


def test_touch_can_delete_restore_and_re_mail(upstream_url, touch):
    end = changes(upstream_url, limit=1000).json()["next_cursor"]

    touch(ids=["u000004"], deleted=True)
    touch(ids=["u000050"], deleted=False)
    touch(ids=["u000005"], email="not-an-email")

    users = changes(upstream_url, cursor=end).json()["users"]
    assert [(user["id"], user["deleted"], user.get("email")) for user in users] == [
        ("u000004", True, None),
        ("u000050", False, "user000050@upstream.example"),
        ("u000005", False, "not-an-email"),
    ]


def test_touching_a_share_is_reproducible_and_picks_live_users(upstream_url, touch):
    first = touch(share=0.01, seed=7)
    HTTP.post(f"{upstream_url}/v1/_admin/reset").raise_for_status()
    again = touch(share=0.01, seed=7)
    other_seed = touch(share=0.01, seed=8)

    assert first == again
    assert len(first) == round(DEMO_LIVE_USERS * 0.01)
    assert other_seed != first
    assert not [user for user in first if int(user[1:]) % 50 == 0]


@pytest.mark.parametrize(
    "body",
    [
        {"ids": ["u999999"]},
        {"ids": ["u000001"], "share": 0.1},
        {"share": 0},
        {"share": 0.1, "email": "a@b.example"},
        {"ids": "u000001"},
        {"ids": ["u000001"], "colour": "red"},
    ],
)
def test_touch_rejects_a_bad_request(upstream_url, body):
    response = HTTP.post(f"{upstream_url}/v1/_admin/touch", json=body)

    assert response.status_code == 400
    assert response.json()["error"] in ("unknown_ids", "invalid_body")

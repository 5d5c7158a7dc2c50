"""Client of the third-party user service (contract: docs/upstream.md); all network I/O of the users app.

One ``httpx.Client`` per process, created on first use so that nothing is
opened in a gunicorn master before it forks, and rebuilt when the process id
or ``THIRD_PARTY_USERS_URL`` changes. Responses are parsed into typed records
here, so the rest of the app never sees raw JSON.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)

CHANGES_PATH = "/v1/users/changes"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
RETRY_DELAY = 0.5
# Failures where the request most likely never reached the application (a
# refused connection, a pooled keep-alive connection the server had closed);
# a GET of the feed is safe to repeat then. Timeouts are not retried: the
# repeat would double an already long wait.
_RETRYABLE = (httpx.NetworkError, httpx.RemoteProtocolError)


class UpstreamError(Exception):
    """The user service could not be reached or answered outside the contract."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


@dataclass(frozen=True)
class UpstreamUser:
    """One item of the change feed; tombstones (``deleted``) may have no email or display name."""

    id: str
    updated_at: datetime
    deleted: bool
    email: str | None
    display_name: str | None


@dataclass(frozen=True)
class ChangesPage:
    users: list[UpstreamUser]
    next_cursor: str
    has_more: bool


_client: httpx.Client | None = None
_client_key: tuple[int, str] | None = None
_client_lock = threading.Lock()


def get_client() -> httpx.Client:
    """The process-wide client for the configured base URL (raises :class:`UpstreamError` if unset)."""
    global _client, _client_key
    base_url = settings.THIRD_PARTY_USERS_URL
    if not base_url:
        raise UpstreamError("THIRD_PARTY_USERS_URL is not set")
    key = (os.getpid(), base_url)
    with _client_lock:
        if _client is None or _client_key != key:
            # After a fork the inherited client shares its sockets with the
            # parent: drop it without closing, the parent still uses them.
            if _client is not None and _client_key is not None and _client_key[0] == key[0]:
                _client.close()
            _client = httpx.Client(base_url=base_url, timeout=TIMEOUT, headers={"Accept": "application/json"})
            _client_key = key
        return _client


def fetch_changes(*, cursor: str, limit: int) -> ChangesPage:
    """One page of the change feed after ``cursor`` ("" = from the beginning)."""
    client = get_client()
    params: dict[str, str | int] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    response = _get(client, CHANGES_PATH, params)
    url = str(response.request.url)
    if not response.is_success:
        raise UpstreamError(
            f"GET {url} returned HTTP {response.status_code}: {response.text[:200]}",
            url=url,
            status=response.status_code,
        )
    try:
        return _parse_page(response.json())
    except (ValueError, TypeError, KeyError) as exc:
        raise UpstreamError(
            f"GET {url} returned a malformed page: {exc}", url=url, status=response.status_code
        ) from None


def _get(client: httpx.Client, path: str, params: dict[str, str | int]) -> httpx.Response:
    url = f"{client.base_url}{path.lstrip('/')}"
    try:
        try:
            return client.get(path, params=params)
        except _RETRYABLE as exc:
            logger.warning("GET %s failed (%s); retrying once", url, exc)
            time.sleep(RETRY_DELAY)
            return client.get(path, params=params)
    except httpx.HTTPError as exc:
        raise UpstreamError(f"GET {url} failed: {type(exc).__name__}: {exc}", url=url) from exc


def _parse_page(data: Any) -> ChangesPage:
    if not isinstance(data, dict):
        raise TypeError("the body is not a JSON object")
    users, next_cursor, has_more = data["users"], data["next_cursor"], data["has_more"]
    if not isinstance(users, list):
        raise TypeError("users is not a list")
    if not isinstance(next_cursor, str):
        raise TypeError("next_cursor is not a string")
    if not isinstance(has_more, bool):
        raise TypeError("has_more is not a boolean")
    return ChangesPage(
        users=[_parse_user(item, position) for position, item in enumerate(users)],
        next_cursor=next_cursor,
        has_more=has_more,
    )


def _parse_user(item: Any, position: int) -> UpstreamUser:
    """Bad ordering fields (id, updated_at, deleted) fail the page; the rest is the sync's to judge."""
    if not isinstance(item, dict):
        raise TypeError(f"users[{position}] is not an object")
    user_id, updated_at, deleted = item.get("id"), item.get("updated_at"), item.get("deleted")
    if not isinstance(user_id, str) or not user_id:
        raise TypeError(f"users[{position}].id is not a non-empty string")
    if not isinstance(deleted, bool):
        raise TypeError(f"users[{position}] ({user_id}): deleted is not a boolean")
    if not isinstance(updated_at, str):
        raise TypeError(f"users[{position}] ({user_id}): updated_at is not a string")
    moment = datetime.fromisoformat(updated_at)
    if moment.tzinfo is None:
        raise ValueError(f"users[{position}] ({user_id}): updated_at has no UTC offset")
    email, display_name = item.get("email"), item.get("display_name")
    return UpstreamUser(
        id=user_id,
        updated_at=moment,
        deleted=deleted,
        email=email if isinstance(email, str) else None,
        display_name=display_name if isinstance(display_name, str) else None,
    )

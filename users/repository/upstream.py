"""Client of the third-party user service (contract: docs/upstream.md); all network I/O of the users app.

One pooled ``httpx.Client`` per process, created on first use so that nothing
is opened in a gunicorn master before it forks, and rebuilt when the process
id, ``THIRD_PARTY_USERS_URL`` or a timeout changes. Responses are parsed into
typed records here, so the rest of the app never sees raw JSON.

Failures that a repeat may cure (connection errors, timeouts, HTTP 429 and
5xx) are retried by tenacity with exponential backoff and jitter, or after the
server's ``Retry-After``; every wait is capped and ends early when the
caller's ``should_stop()`` turns true. Anything else is an
:class:`UpstreamError` at once.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import tenacity
from django.conf import settings

from users.pacing import GiveWay, giving_way, never

logger = logging.getLogger(__name__)

CHANGES_PATH = "/v1/users/changes"
# How often a retry wait asks should_stop(): a cancelled job stops waiting within this.
STOP_POLL_SECONDS = 0.05
# Failures where a repeat of the (idempotent) GET may well succeed.
_TRANSIENT_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class UpstreamError(Exception):
    """The user service could not be reached or answered outside the contract."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class UpstreamStopped(Exception):
    """``should_stop()`` turned true while the client waited to retry; the page was not fetched."""


class _TransientError(UpstreamError):
    """A failure worth another attempt, with the wait the server asked for (``Retry-After``), if any."""

    def __init__(
        self, message: str, *, url: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, url=url, status=status)
        self.retry_after = retry_after


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
_client_key: tuple[int, str, float, float] | None = None
_client_lock = threading.Lock()


def get_client() -> httpx.Client:
    """The process-wide client for the configured base URL (raises :class:`UpstreamError` if unset)."""
    global _client, _client_key
    base_url = settings.THIRD_PARTY_USERS_URL
    if not base_url:
        raise UpstreamError("THIRD_PARTY_USERS_URL is not set")
    connect, read = settings.THIRD_PARTY_USERS_CONNECT_TIMEOUT, settings.THIRD_PARTY_USERS_READ_TIMEOUT
    key = (os.getpid(), base_url, connect, read)
    with _client_lock:
        if _client is None or _client_key != key:
            # After a fork the inherited client shares its sockets with the
            # parent: drop it without closing, the parent still uses them.
            if _client is not None and _client_key is not None and _client_key[0] == key[0]:
                _client.close()
            _client = httpx.Client(
                base_url=base_url,
                timeout=httpx.Timeout(read, connect=connect),
                headers={"Accept": "application/json"},
            )
            _client_key = key
        return _client


def fetch_changes(
    *,
    cursor: str,
    limit: int,
    should_stop: Callable[[], bool] = lambda: False,
    give_way: GiveWay = never,
) -> ChangesPage:
    """One page of the change feed after ``cursor`` ("" = from the beginning).

    Parsing the records calls ``give_way()`` between small batches of them.

    Raises :class:`UpstreamError` (naming the URL and, if there was one, the
    HTTP status) when the page cannot be had, and :class:`UpstreamStopped`
    when ``should_stop()`` turned true during a wait between attempts.
    """
    client = get_client()
    params: dict[str, str | int] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    request = client.build_request("GET", CHANGES_PATH, params=params)
    response = _send_with_retries(client, request, should_stop=should_stop)
    try:
        return _parse_page(response.json(), give_way)
    except (ValueError, TypeError, KeyError) as exc:
        raise UpstreamError(
            f"GET {request.url} returned a malformed page: {exc}",
            url=str(request.url),
            status=response.status_code,
        ) from None


def _send_with_retries(
    client: httpx.Client, request: httpx.Request, *, should_stop: Callable[[], bool]
) -> httpx.Response:
    max_retries: int = settings.THIRD_PARTY_USERS_MAX_RETRIES
    base: float = settings.THIRD_PARTY_USERS_BACKOFF
    cap: float = settings.THIRD_PARTY_USERS_BACKOFF_MAX
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max_retries + 1),
        wait=_WaitRetryAfterOr(
            tenacity.wait_exponential_jitter(multiplier=base, max=cap, jitter=base), cap=cap
        ),
        retry=tenacity.retry_if_exception_type(_TransientError),
        sleep=_sleep_unless_stopped(should_stop),
        before_sleep=_log_retry,
        reraise=True,
    )
    try:
        return retrying(_send_once, client, request)
    except _TransientError as exc:
        attempts = max_retries + 1
        raise UpstreamError(
            f"{exc} (gave up after {attempts} attempt{'s' if attempts > 1 else ''})",
            url=exc.url,
            status=exc.status,
        ) from exc


def _send_once(client: httpx.Client, request: httpx.Request) -> httpx.Response:
    url = str(request.url)
    try:
        response = client.send(request)
    except _TRANSIENT_TRANSPORT as exc:
        raise _TransientError(f"GET {url} failed: {type(exc).__name__}: {exc}", url=url) from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"GET {url} failed: {type(exc).__name__}: {exc}", url=url) from exc
    if response.is_success:
        return response
    message = f"GET {url} returned HTTP {response.status_code}: {response.text[:200]}"
    if response.status_code == 429 or response.status_code >= 500:
        raise _TransientError(
            message,
            url=url,
            status=response.status_code,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    raise UpstreamError(message, url=url, status=response.status_code)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date; ``None`` if unusable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000": UTC by RFC 5322
        moment = moment.replace(tzinfo=UTC)
    # A date already past means "now".
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


class _WaitRetryAfterOr(tenacity.wait.wait_base):
    """The server's ``Retry-After`` when it gave one, else the backoff; never more than ``cap``."""

    def __init__(self, backoff: tenacity.wait.wait_base, *, cap: float) -> None:
        self.backoff = backoff
        self.cap = cap

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        failure = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(failure, _TransientError) and failure.retry_after is not None:
            return min(failure.retry_after, self.cap)
        return min(self.backoff(retry_state), self.cap)


def _sleep_unless_stopped(should_stop: Callable[[], bool]) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            if should_stop():
                raise UpstreamStopped("stopped while waiting to retry the user service")
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, STOP_POLL_SECONDS))

    return sleep


def _log_retry(retry_state: tenacity.RetryCallState) -> None:
    failure = retry_state.outcome.exception() if retry_state.outcome else None
    wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
    logger.warning(
        "%s; attempt %d of %d, retrying in %.2f s",
        failure,
        retry_state.attempt_number,
        settings.THIRD_PARTY_USERS_MAX_RETRIES + 1,
        wait,
    )


def _parse_page(data: Any, give_way: GiveWay) -> ChangesPage:
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
        users=[_parse_user(item, position) for position, item in enumerate(giving_way(users, give_way))],
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

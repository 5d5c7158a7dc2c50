"""Client of the third-party user service (contract: docs/upstream.md); all network I/O of the users app.

Each request goes through :mod:`users.repository.upstream_http` (one pooled
client per process, a deadline per request, a byte cap per page, credentials
kept out of every URL shown). Responses are parsed into typed records here,
so the rest of the app never sees raw JSON; a page that breaks the contract
(malformed, or more records than ``limit``) is an :class:`UpstreamError`.

Failures that a repeat may cure (connection errors, timeouts, a request past
its deadline, HTTP 429 and 5xx) are retried by tenacity with exponential
backoff and jitter, or after the server's ``Retry-After``; every wait is
capped and ends early when the caller's ``should_stop()`` turns true, which
also cuts a transfer short. Anything else is an :class:`UpstreamError` at once.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import tenacity

from users.conf import users_settings
from users.pacing import GiveWay, giving_way, never
from users.repository import upstream_http
from users.repository.upstream_http import STOP_POLL_SECONDS

logger = logging.getLogger(__name__)

CHANGES_PATH = "/v1/users/changes"
# Failures where a repeat of the (idempotent) GET may well succeed.
_TRANSIENT_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class UpstreamError(Exception):
    """The user service could not be reached or answered outside the contract."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class UpstreamStopped(Exception):
    """``should_stop()`` turned true during a transfer or a wait to retry; the page was not fetched."""


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


def get_client() -> httpx.Client:
    """The process-wide client for the configured base URL (raises :class:`UpstreamError` if unset)."""
    try:
        return upstream_http.get_client()
    except ValueError as exc:
        raise UpstreamError(str(exc)) from None


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
    HTTP status) when the page cannot be had or breaks the contract, and
    :class:`UpstreamStopped` when ``should_stop()`` turned true during a
    transfer or a wait between attempts.
    """
    client = get_client()
    params: dict[str, str | int] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    request = client.build_request("GET", CHANGES_PATH, params=params)
    url = upstream_http.shown_url(request.url)
    answer = _send_with_retries(request, url=url, should_stop=should_stop)
    try:
        page = _parse_page(json.loads(answer.body), give_way)
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise UpstreamError(
            f"GET {url} returned a malformed page: {exc}", url=url, status=answer.status
        ) from None
    if len(page.users) > limit:
        raise UpstreamError(
            f"GET {url} returned {len(page.users)} users, more than the limit of {limit} it asked for",
            url=url,
            status=answer.status,
        )
    return page


def _send_with_retries(
    request: httpx.Request, *, url: str, should_stop: Callable[[], bool]
) -> upstream_http.Answer:
    max_retries = users_settings.third_party_max_retries
    base = users_settings.third_party_backoff
    cap = users_settings.third_party_backoff_max
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
        return retrying(_send_once, request, url=url, should_stop=should_stop)
    except _TransientError as exc:
        attempts = max_retries + 1
        raise UpstreamError(
            f"{exc} (gave up after {attempts} attempt{'s' if attempts > 1 else ''})",
            url=exc.url,
            status=exc.status,
        ) from exc


def _send_once(request: httpx.Request, *, url: str, should_stop: Callable[[], bool]) -> upstream_http.Answer:
    try:
        answer = upstream_http.exchange(request, should_stop=should_stop)
    except upstream_http.TransferStopped:
        raise UpstreamStopped("stopped during a transfer from the user service") from None
    except upstream_http.DeadlineExceeded:
        deadline = users_settings.third_party_request_deadline
        raise _TransientError(
            f"GET {url} did not complete within {deadline:g} s (THIRD_PARTY_USERS_REQUEST_DEADLINE)", url=url
        ) from None
    except upstream_http.BodyTooLarge as exc:
        raise UpstreamError(
            f"GET {url} answered a page too large: {exc} (THIRD_PARTY_USERS_MAX_PAGE_BYTES)", url=url
        ) from None
    except _TRANSIENT_TRANSPORT as exc:
        raise _TransientError(f"GET {url} failed: {type(exc).__name__}: {exc}", url=url) from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"GET {url} failed: {type(exc).__name__}: {exc}", url=url) from exc
    if 200 <= answer.status < 300:
        return answer
    text = answer.body[:200].decode("utf-8", "replace")
    message = f"GET {url} returned HTTP {answer.status}: {text}"
    if answer.status == 429 or answer.status >= 500:
        raise _TransientError(
            message,
            url=url,
            status=answer.status,
            retry_after=parse_retry_after(answer.headers.get("Retry-After")),
        )
    raise UpstreamError(message, url=url, status=answer.status)


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
        users_settings.third_party_max_retries + 1,
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

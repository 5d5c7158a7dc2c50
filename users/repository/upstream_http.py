"""One HTTP exchange with the third-party user service, bounded in time and size; the pooled client.

httpx's timeouts bound each socket operation, so a server that sends a byte
every few seconds never trips its read timeout. Here every request has an
overall deadline (``THIRD_PARTY_USERS_REQUEST_DEADLINE``) covering the
connection, the wait for the answer and the whole body: a watchdog thread
shuts the request's socket down when the deadline passes, or when the
caller's ``should_stop()`` turns true, so a blocked read ends at once. The
body is read up to ``THIRD_PARTY_USERS_MAX_PAGE_BYTES``.

Credentials in ``THIRD_PARTY_USERS_URL`` (``https://user:password@host``) are
sent as HTTP basic auth and never appear in a URL this module hands out: a
request's URL holds none, and :func:`shown_url` writes ``***@`` where they
were. ``THIRD_PARTY_USERS_TOKEN`` is sent as ``Authorization: Bearer``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from users.conf import users_settings

#: How often the watchdog asks ``should_stop()``: a cancelled job's transfer ends within this.
STOP_POLL_SECONDS = 0.05


class TransferStopped(Exception):
    """``should_stop()`` turned true during the exchange; it was cut off."""


class DeadlineExceeded(Exception):
    """The exchange did not complete within its deadline; it was cut off."""


class BodyTooLarge(Exception):
    """The answer's body is larger than the cap."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes


_client: httpx.Client | None = None
_client_key: tuple[Any, ...] | None = None
_client_lock = threading.Lock()


def base_url() -> httpx.URL:
    """``THIRD_PARTY_USERS_URL`` without its credentials (raises ``ValueError`` if unset)."""
    url = users_settings.third_party_url
    if not url:
        raise ValueError("THIRD_PARTY_USERS_URL is not set")
    return httpx.URL(url).copy_with(username=None, password=None)


def shown_url(url: httpx.URL) -> str:
    """A request's URL as messages and logs show it: ``***@`` marks credentials of the setting."""
    configured = users_settings.third_party_url
    if configured and httpx.URL(configured).userinfo:
        return str(url.copy_with(username="***", password=None))
    return str(url)


def get_client() -> httpx.Client:
    """The process-wide client (raises ``ValueError`` if ``THIRD_PARTY_USERS_URL`` is unset).

    Created on first use, so that nothing is opened in a gunicorn master before
    it forks, and rebuilt when the process id or a setting it uses changes.
    """
    global _client, _client_key
    url = users_settings.third_party_url
    connect, read = users_settings.third_party_connect_timeout, users_settings.third_party_read_timeout
    token = users_settings.third_party_token
    key = (os.getpid(), url, connect, read, token)
    with _client_lock:
        if _client is None or _client_key != key:
            base = base_url()
            # After a fork the inherited client shares its sockets with the
            # parent: drop it without closing, the parent still uses them.
            if _client is not None and _client_key is not None and _client_key[0] == key[0]:
                _client.close()
            parsed = httpx.URL(url)
            headers = {"Accept": "application/json"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            _client = httpx.Client(
                base_url=base,
                auth=httpx.BasicAuth(parsed.username, parsed.password) if parsed.userinfo else None,
                timeout=httpx.Timeout(read, connect=connect),
                headers=headers,
            )
            _client_key = key
        return _client


def exchange(request: httpx.Request, *, should_stop: Callable[[], bool]) -> Answer:
    """Send ``request`` and read its whole answer within the deadline and the byte cap.

    Raises :class:`DeadlineExceeded`, :class:`TransferStopped`,
    :class:`BodyTooLarge`, or httpx's own errors (connection refused, a
    malformed answer).
    """
    deadline_seconds = users_settings.third_party_request_deadline
    max_bytes = users_settings.third_party_max_page_bytes
    client = get_client()
    deadline = time.monotonic() + deadline_seconds
    timeout = httpx.Timeout(
        min(users_settings.third_party_read_timeout, deadline_seconds),
        connect=min(users_settings.third_party_connect_timeout, deadline_seconds),
    )
    with _Watchdog(deadline=deadline, should_stop=should_stop) as watchdog:
        request.extensions = {**request.extensions, "timeout": timeout.as_dict(), "trace": watchdog.trace}
        try:
            response = client.send(request, stream=True)
            try:
                watchdog.watch(response.extensions.get("network_stream"))
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise BodyTooLarge(f"its Content-Length is {declared}, over {max_bytes} bytes")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise BodyTooLarge(f"its body is over {max_bytes} bytes")
                    chunks.append(chunk)
            finally:
                response.close()
        except httpx.HTTPError:
            watchdog.raise_if_cut(failed=True)
            raise
        watchdog.raise_if_cut(failed=False)  # a cut that came as the last byte did
    return Answer(status=response.status_code, headers=response.headers, body=b"".join(chunks))


class _Watchdog:
    """Shuts an exchange's socket down once its deadline passes or ``should_stop()`` turns true.

    The socket is known from httpcore's ``trace`` extension as soon as a new
    connection is made, or from the answer on a pooled one; until then the
    request's timeouts, capped at the deadline, bound the wait.
    """

    def __init__(self, *, deadline: float, should_stop: Callable[[], bool]) -> None:
        self._deadline = deadline
        self._should_stop = should_stop
        self._reason = ""
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="users-upstream-watchdog", daemon=True)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        self._thread.join()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: takes the socket of a connection as soon as it is made."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self.watch(info.get("return_value"))

    def watch(self, stream: Any) -> None:
        """Watch the socket of httpcore's network stream ``stream`` (``None``: nothing to watch)."""
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return
        with self._lock:
            self._socket = sock
            if self._reason:
                self._cut()

    def raise_if_cut(self, *, failed: bool) -> None:
        """Raise what cut the exchange off; with ``failed``, a timeout at the deadline counts as a cut."""
        with self._lock:
            reason = self._reason
        if reason == "stopped":
            raise TransferStopped("stopped during the transfer")
        if reason == "deadline" or (failed and time.monotonic() >= self._deadline):
            raise DeadlineExceeded("past its deadline")

    def _watch(self) -> None:
        while not self._done.wait(max(0.0, min(STOP_POLL_SECONDS, self._deadline - time.monotonic()))):
            if time.monotonic() >= self._deadline:
                reason = "deadline"
            elif self._should_stop():
                reason = "stopped"
            else:
                continue
            with self._lock:
                self._reason = reason
                self._cut()
            return

    def _cut(self) -> None:
        if self._socket is not None:
            with suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)

"""The demo upstream as a WSGI application implementing the contract of docs/upstream.md.

Endpoints:

* ``GET /v1/users/changes?cursor=&limit=``: the change feed.
* ``POST /v1/_admin/touch``: change users now so that an incremental sync has
  something to fetch (``{"ids": [...]}`` or ``{"share": 0.01, "seed": 0}``,
  optionally ``"deleted": true|false`` and, with ids, ``"email": "..."`` and
  ``"display_name": "..."``).
* ``POST /v1/_admin/faults``: set the faults the feed injects (see
  :mod:`upstream_demo.faults`); ``GET`` shows them and what was served.
* ``POST /v1/_admin/reset``: back to the generated data set (optionally
  ``{"users": N}`` for another size), no faults and no token; with
  ``{"token": "..."}`` the feed answers 401 unless a request carries
  ``Authorization: Bearer <token>``.

The cursor is the urlsafe base64 (unpadded) of ``{"t": <microseconds>, "id": <id>}``
of the last user returned; clients must treat it as opaque.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from upstream_demo.dataset import MAX_USERS, Dataset, FeedKey, UnknownUsers
from upstream_demo.faults import Fault, Faults, InvalidFaults, parse_plan

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
MAX_BODY_BYTES = 1_000_000

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Handler = Callable[[dict[str, Any]], dict[str, Any]]

FEED_PATH = "/v1/users/changes"


class BadRequest(Exception):
    """The request breaks the contract; answered with 400 and a JSON error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def encode_cursor(key: FeedKey) -> str:
    raw = json.dumps({"t": key[0], "id": key[1]}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> FeedKey | None:
    """The feed position of a cursor; ``None`` for the empty cursor (the beginning)."""
    if cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("invalid_cursor", f"cursor is not valid: {exc}") from None
    if (
        not isinstance(data, dict)
        or type(data.get("t")) is not int
        or not isinstance(data.get("id"), str)
        or set(data) != {"t", "id"}
    ):
        raise BadRequest("invalid_cursor", "cursor is not valid: unexpected content")
    return (data["t"], data["id"])


def parse_limit(values: list[str] | None) -> int:
    if not values:
        return DEFAULT_LIMIT
    text = values[0]
    if not text.isdigit():
        raise BadRequest("invalid_limit", f"limit must be an integer from 1 to {MAX_LIMIT}, got {text!r}")
    limit = int(text)
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest("invalid_limit", f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit}")
    return limit


class DemoUpstream:
    """The WSGI callable; one instance serves one :class:`Dataset` from many threads."""

    def __init__(self, dataset: Dataset, faults: Faults | None = None) -> None:
        self.dataset = dataset
        self.faults = faults or Faults()
        self.token = ""
        self._routes: dict[str, dict[str, Handler]] = {
            FEED_PATH: {"GET": self._changes},
            "/v1/_admin/touch": {"POST": self._touch},
            "/v1/_admin/faults": {"GET": self._faults_get, "POST": self._faults_set},
            "/v1/_admin/reset": {"POST": self._reset},
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        methods = self._routes.get(environ.get("PATH_INFO", ""))
        if methods is None:
            return _json(start_response, 404, {"error": "not_found", "message": "no such endpoint"})
        handler = methods.get(environ.get("REQUEST_METHOD", ""))
        if handler is None:
            allowed = ", ".join(methods)
            return _json(
                start_response,
                405,
                {"error": "method_not_allowed", "message": f"use {allowed}"},
                [("Allow", allowed)],
            )
        if handler == self._changes:
            return self._changes_with_faults(environ, start_response)
        try:
            return _json(start_response, 200, handler(environ))
        except BadRequest as exc:
            return _json(start_response, 400, {"error": exc.code, "message": exc.message})

    def _changes_with_faults(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The feed as the fault plan wants this request answered."""
        if self.token and environ.get("HTTP_AUTHORIZATION") != f"Bearer {self.token}":
            return _json(
                start_response, 401, {"error": "unauthorized", "message": "a bearer token is required"}
            )
        fault, delay = self.faults.take()
        kind = fault.fault if fault is not None else "page"
        if fault is not None and kind == "slow":
            delay += fault.seconds or 0.0
        time.sleep(delay)
        if fault is not None and kind in ("error", "throttle", "drop"):
            return _fault_answer(start_response, fault)
        try:
            oversize = (fault.users or 0) if fault is not None and kind == "oversize" else None
            payload = self._changes(environ, oversize=oversize)
        except BadRequest as exc:
            return _json(start_response, 400, {"error": exc.code, "message": exc.message})
        if kind == "trickle":
            body = _encode(payload)
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return _trickle(body, fault.seconds if fault and fault.seconds is not None else 2.0)
        if kind == "malformed":
            bad_item = {"id": 42, "updated_at": "yesterday", "deleted": "no"}
            return _json(start_response, 200, {**payload, "users": [bad_item, *payload["users"]]})
        if kind == "truncate":
            body = _encode(payload)
            return _raw(start_response, 200, body[: len(body) // 2])
        return _json(start_response, 200, payload)

    def _changes(self, environ: dict[str, Any], *, oversize: int | None = None) -> dict[str, Any]:
        """The page; with ``oversize``, that many records whatever the limit (0: ten times the limit)."""
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        limit = parse_limit(query.get("limit"))
        if oversize is not None:
            limit = oversize or limit * 10
        cursor = query.get("cursor", [""])[0]
        records, has_more = self.dataset.changes_after(decode_cursor(cursor), limit)
        return {
            "users": [record.as_json() for record in records],
            # An empty page hands the cursor back, so a client can always store next_cursor.
            "next_cursor": encode_cursor(records[-1].key) if records else cursor,
            "has_more": has_more,
        }

    def _touch(self, environ: dict[str, Any]) -> dict[str, Any]:
        body = _read_json_object(environ)
        unknown_keys = set(body) - {"ids", "share", "seed", "deleted", "email", "display_name"}
        if unknown_keys:
            raise BadRequest("invalid_body", f"unknown keys: {', '.join(sorted(unknown_keys))}")
        deleted = body.get("deleted")
        if deleted is not None and not isinstance(deleted, bool):
            raise BadRequest("invalid_body", "deleted must be true or false")
        email = body.get("email")
        if email is not None and not isinstance(email, str):
            raise BadRequest("invalid_body", "email must be a string")
        name = body.get("display_name")
        if name is not None and not isinstance(name, str):
            raise BadRequest("invalid_body", "display_name must be a string")
        if ("ids" in body) == ("share" in body):
            raise BadRequest("invalid_body", "give exactly one of ids or share")
        if "ids" in body:
            ids = body["ids"]
            if not isinstance(ids, list) or not all(isinstance(user, str) for user in ids):
                raise BadRequest("invalid_body", "ids must be a list of strings")
        else:
            share, seed = body["share"], body.get("seed", 0)
            if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
                raise BadRequest("invalid_body", "share must be a number in (0, 1]")
            if type(seed) is not int:
                raise BadRequest("invalid_body", "seed must be an integer")
            if email is not None:
                raise BadRequest("invalid_body", "email needs ids: one address cannot go to many users")
            if name is not None:
                raise BadRequest("invalid_body", "display_name needs ids")
            ids = self.dataset.pick(share=share, seed=seed)
        try:
            touched = self.dataset.touch(ids, deleted=deleted, email=email, display_name=name)
        except UnknownUsers as exc:
            raise BadRequest("unknown_ids", f"unknown ids: {', '.join(exc.ids)}") from None
        return {"touched": [record.id for record in touched]}

    def _reset(self, environ: dict[str, Any]) -> dict[str, Any]:
        body = _read_json_object(environ, allow_empty=True)
        count = body.get("users", self.dataset.count)
        if type(count) is not int or not 0 <= count <= MAX_USERS:
            raise BadRequest("invalid_body", f"users must be an integer from 0 to {MAX_USERS}")
        token = body.get("token", "")
        if not isinstance(token, str):
            raise BadRequest("invalid_body", "token must be a string")
        self.dataset.reset(count)
        self.faults.set(parse_plan({}))
        self.token = token
        return {"users": count}

    def _faults_get(self, environ: dict[str, Any]) -> dict[str, Any]:
        return self.faults.as_json()

    def _faults_set(self, environ: dict[str, Any]) -> dict[str, Any]:
        try:
            plan = parse_plan(_read_json_object(environ, allow_empty=True))
        except InvalidFaults as exc:
            raise BadRequest("invalid_body", str(exc)) from None
        self.faults.set(plan)
        return self.faults.as_json()


def _read_json_object(environ: dict[str, Any], *, allow_empty: bool = False) -> dict[str, Any]:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadRequest("invalid_body", "bad Content-Length") from None
    if length > MAX_BODY_BYTES:
        raise BadRequest("invalid_body", "body too large")
    raw = environ["wsgi.input"].read(length) if length else b""
    if not raw and allow_empty:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest("invalid_body", "body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("invalid_body", "body must be a JSON object")
    return body


def _trickle(body: bytes, seconds: float) -> Iterator[bytes]:
    """The body one byte every ``seconds`` (wsgiref sends each piece at once); ends when the client leaves."""
    for index in range(len(body)):
        time.sleep(seconds)
        yield body[index : index + 1]


def _fault_answer(start_response: StartResponse, fault: Fault) -> list[bytes]:
    if fault.fault == "drop":
        # wsgiref takes this for a client that went away: it writes nothing and closes the socket.
        raise ConnectionAbortedError("demo upstream fault: drop the connection")
    if fault.fault == "throttle":
        headers = [("Retry-After", fault.retry_after)] if fault.retry_after is not None else []
        return _json(start_response, 429, {"error": "throttled", "message": "injected fault"}, headers)
    status = fault.status or 500
    return _json(start_response, status, {"error": "injected", "message": f"injected fault: HTTP {status}"})


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _json(
    start_response: StartResponse,
    status: int,
    payload: dict[str, Any],
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    return _raw(start_response, status, _encode(payload), headers)


def _raw(
    start_response: StartResponse, status: int, body: bytes, headers: list[tuple[str, str]] | None = None
) -> list[bytes]:
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(headers or [])],
    )
    return [body]

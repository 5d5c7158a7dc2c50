"""The demo upstream as a WSGI application implementing the contract of docs/upstream.md.

Endpoints:

* ``GET /v1/users/changes?cursor=&limit=``: the change feed.
* ``POST /v1/_admin/touch``: change users now so that an incremental sync has
  something to fetch (``{"ids": [...]}`` or ``{"share": 0.01, "seed": 0}``,
  optionally ``"deleted": true|false`` and, with ids, ``"email": "..."``).
* ``POST /v1/_admin/reset``: back to the generated data set (optionally
  ``{"users": N}`` for another size).

The cursor is the urlsafe base64 (unpadded) of ``{"t": <microseconds>, "id": <id>}``
of the last user returned; clients must treat it as opaque.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from users.upstream_demo.dataset import MAX_USERS, Dataset, FeedKey, UnknownUsers

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
MAX_BODY_BYTES = 1_000_000

StartResponse = Callable[[str, list[tuple[str, str]]], Any]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


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

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._routes: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
            "/v1/users/changes": ("GET", self._changes),
            "/v1/_admin/touch": ("POST", self._touch),
            "/v1/_admin/reset": ("POST", self._reset),
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        route = self._routes.get(environ.get("PATH_INFO", ""))
        if route is None:
            return _json(start_response, 404, {"error": "not_found", "message": "no such endpoint"})
        method, handler = route
        if environ.get("REQUEST_METHOD") != method:
            return _json(
                start_response,
                405,
                {"error": "method_not_allowed", "message": f"use {method}"},
                [("Allow", method)],
            )
        try:
            return _json(start_response, 200, handler(environ))
        except BadRequest as exc:
            return _json(start_response, 400, {"error": exc.code, "message": exc.message})

    def _changes(self, environ: dict[str, Any]) -> dict[str, Any]:
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        limit = parse_limit(query.get("limit"))
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
        unknown_keys = set(body) - {"ids", "share", "seed", "deleted", "email"}
        if unknown_keys:
            raise BadRequest("invalid_body", f"unknown keys: {', '.join(sorted(unknown_keys))}")
        deleted = body.get("deleted")
        if deleted is not None and not isinstance(deleted, bool):
            raise BadRequest("invalid_body", "deleted must be true or false")
        email = body.get("email")
        if email is not None and not isinstance(email, str):
            raise BadRequest("invalid_body", "email must be a string")
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
            ids = self.dataset.pick(share=share, seed=seed)
        try:
            touched = self.dataset.touch(ids, deleted=deleted, email=email)
        except UnknownUsers as exc:
            raise BadRequest("unknown_ids", f"unknown ids: {', '.join(exc.ids)}") from None
        return {"touched": [record.id for record in touched]}

    def _reset(self, environ: dict[str, Any]) -> dict[str, Any]:
        body = _read_json_object(environ, allow_empty=True)
        count = body.get("users", self.dataset.count)
        if type(count) is not int or not 0 <= count <= MAX_USERS:
            raise BadRequest("invalid_body", f"users must be an integer from 0 to {MAX_USERS}")
        self.dataset.reset(count)
        return {"users": count}


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


def _json(
    start_response: StartResponse,
    status: int,
    payload: dict[str, Any],
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    start_response(
        f"{status} {_REASONS[status]}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(headers or [])],
    )
    return [body]

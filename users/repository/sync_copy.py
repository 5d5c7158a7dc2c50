"""New mirrors of upstream users, written with ``COPY`` on PostgreSQL (``bulk_create`` elsewhere).

Part of a page's transaction (:func:`users.repository.sync_db.page_write`).
The rows are written as COPY text by hand: no statement of 500 x 17
placeholders to build, send and parse, and no per-value call of psycopg's
``write_row()`` (see bench/README.md).
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db import connection

from users.models import User
from users.pacing import GiveWay


@dataclass(frozen=True)
class NewMirror:
    external_id: str
    username: str
    email: str
    display_name: str


def unusable_passwords(count: int) -> list[str]:
    """What ``set_unusable_password()`` stores, ``count`` times, from one ``urandom`` call.

    Django draws each of the 40 random characters with its own ``choice()``, a
    large share of a first sync's time (bench/README.md, "Decisions"). Only the
    ``!`` prefix matters to Django; the random rest keeps every row different.
    """
    random = secrets.token_urlsafe(30 * count)
    return [UNUSABLE_PASSWORD_PREFIX + random[40 * index : 40 * index + 40] for index in range(count)]


def mirrors_create(mirrors: list[NewMirror], *, synced_at: datetime, give_way: GiveWay) -> None:
    """Insert new mirrors: active, without a usable password, every other field at its model default."""
    if not mirrors:
        return
    if connection.vendor != "postgresql":
        passwords = unusable_passwords(len(mirrors))
        User.objects.bulk_create(
            [
                _new_user(mirror, synced_at, password)
                for mirror, password in zip(mirrors, passwords, strict=True)
            ]
        )
        return
    # COPY, not INSERT: no statement of 500 x 17 placeholders to build, send and parse.
    # The rows are written as COPY text by hand, from one %-format line with the
    # constant fields filled in once, instead of psycopg's write_row() per row, and
    # values are escaped only on a page that needs it (bench/README.md, "Decisions").
    fields = [f for f in User._meta.concrete_fields if not f.primary_key]
    template = {f.attname: f.get_default() for f in fields}
    template.update(
        source=User.Source.THIRD_PARTY.value,
        is_active=True,
        synced_at=synced_at,
        created_at=synced_at,
        updated_at=synced_at,
        date_joined=synced_at,
    )
    line = "\t".join(
        f"%({f.attname})s" if f.attname in _PER_ROW else _copy_text(template[f.attname]).replace("%", "%%")
        for f in fields
    )
    escape = _needs_escaping(mirrors)
    passwords = unusable_passwords(len(mirrors))
    columns = ", ".join(f'"{f.column}"' for f in fields)
    with connection.cursor() as cursor:
        raw: Any = cursor.cursor  # psycopg's cursor, under Django's wrapper
        with raw.copy(f'COPY "{User._meta.db_table}" ({columns}) FROM STDIN') as copy:
            # Sent in chunks: PostgreSQL inserts a chunk (into the table and its indexes)
            # while the next one is built here.
            for start in range(0, len(mirrors), COPY_CHUNK_ROWS):
                lines = []
                for mirror, password in zip(
                    mirrors[start : start + COPY_CHUNK_ROWS],
                    passwords[start : start + COPY_CHUNK_ROWS],
                    strict=True,
                ):
                    row = {**vars(mirror), "password": password}  # base64: never escaped
                    if escape:
                        row.update((name, row[name].translate(_COPY_ESCAPES)) for name in _PER_ROW[:-1])
                    lines.append(line % row)
                copy.write("\n".join(lines) + "\n")
                give_way()


#: Rows of new mirrors per ``COPY`` write.
COPY_CHUNK_ROWS = 100


#: The columns of a new mirror's COPY row that differ per row (the fields of NewMirror, then the password).
_PER_ROW = ("username", "email", "display_name", "external_id", "password")


def _needs_escaping(mirrors: list[NewMirror]) -> bool:
    """Whether any value of the page holds a character COPY's text format escapes (rarely: the
    whole page is checked at once, then each value is escaped only if so)."""
    text = "".join(
        itertools.chain.from_iterable(
            (mirror.username, mirror.email, mirror.display_name, mirror.external_id) for mirror in mirrors
        )
    )
    if "\x00" in text:
        # COPY's text format has no escape for it, and PostgreSQL's text cannot hold it.
        raise ValueError("a new mirror's value holds NUL, which PostgreSQL cannot store")
    return "\\" in text or not text.isprintable()


# COPY's text format escapes these four characters; \N is NULL.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: object) -> str:
    """A value of a new mirror's row in COPY's text format (the types the user fields' defaults have)."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.isoformat()
    raise TypeError(f"no COPY text form for {value!r} (a new field's default?)")


def _new_user(mirror: NewMirror, synced_at: datetime, password: str) -> User:
    return User(
        username=mirror.username,
        email=mirror.email,
        display_name=mirror.display_name,
        external_id=mirror.external_id,
        source=User.Source.THIRD_PARTY,
        synced_at=synced_at,
        password=password,
    )

"""Stored positions of incremental syncs (the ``SyncCursor`` rows).

A sync pays two statements per page for its position: :func:`lock_cursor`
(one ``SELECT … FOR UPDATE``, after a ``SET LOCAL lock_timeout`` on
PostgreSQL) when the page's transaction starts and :func:`advance_cursor`
(one ``UPDATE``) before it commits. The row is created only by the first lock
ever taken for a feed.
"""

from __future__ import annotations

from django.db import OperationalError, connection
from django.utils import timezone

from users.models import SyncCursor


def get_cursor(name: str) -> str:
    """The stored cursor of the feed ``name``; "" (from the beginning) if none was stored yet."""
    return SyncCursor.objects.filter(name=name).values_list("cursor", flat=True).first() or ""


def _names() -> tuple[str, str, str, str]:
    """The quoted table and columns (cursor, name, updated_at) of ``SyncCursor``."""
    quote = connection.ops.quote_name
    fields = SyncCursor._meta.concrete_fields
    column = {field.name: quote(field.column) for field in fields}
    return quote(SyncCursor._meta.db_table), column["cursor"], column["name"], column["updated_at"]


class CursorLocked(Exception):
    """Another transaction held the feed's cursor longer than the lock timeout."""


def _locked(name: str, timeout: float) -> list[str]:
    # Plain SQL: on the path of every page, where the ORM's query building costs as much as
    # the round trip (bench/README.md, "Decisions").
    table, position, key, _ = _names()
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"SET LOCAL lock_timeout = {int(timeout * 1000)}")
        try:
            cursor.execute(f"SELECT {position} FROM {table} WHERE {key} = %s{lock}", [name])
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) == "55P03":  # lock_not_available
                raise CursorLocked(
                    f"the cursor of {name!r} stayed locked by another transaction for {timeout:g} s"
                ) from None
            raise
        return [row[0] for row in cursor.fetchall()]


def lock_cursor(name: str, *, timeout: float = 10.0) -> str:
    """The stored cursor, with its row locked until the surrounding transaction ends.

    Concurrent syncs of the same feed queue up here, so each can check that
    the position it fetched from is still the stored one before applying a page.
    A wait longer than ``timeout`` seconds raises :class:`CursorLocked`.
    """
    rows = _locked(name, timeout)
    if not rows:
        SyncCursor.objects.get_or_create(name=name)
        rows = _locked(name, timeout)
    return rows[0]


def advance_cursor(name: str, cursor: str) -> None:
    """Store ``cursor`` in the row :func:`lock_cursor` locked in this transaction (one ``UPDATE``)."""
    table, position, key, updated_at = _names()
    with connection.cursor() as db_cursor:
        db_cursor.execute(
            f"UPDATE {table} SET {position} = %s, {updated_at} = %s WHERE {key} = %s",
            [cursor, connection.ops.adapt_datetimefield_value(timezone.now()), name],
        )
        updated = db_cursor.rowcount
    if updated != 1:
        raise RuntimeError(f"advance_cursor({name!r}): no locked cursor row; call lock_cursor first")


def save_cursor(name: str, cursor: str) -> None:
    """Store ``cursor``, creating the row if needed (outside a sync: tools and tests)."""
    SyncCursor.objects.update_or_create(name=name, defaults={"cursor": cursor})

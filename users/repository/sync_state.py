"""Stored positions of incremental syncs (the ``SyncCursor`` rows)."""

from __future__ import annotations

from users.models import SyncCursor


def get_cursor(name: str) -> str:
    """The stored cursor of the feed ``name``; "" (from the beginning) if none was stored yet."""
    return SyncCursor.objects.filter(name=name).values_list("cursor", flat=True).first() or ""


def lock_cursor(name: str) -> str:
    """The stored cursor, with its row locked until the surrounding transaction ends.

    Concurrent syncs of the same feed queue up here, so each can check that
    the position it fetched from is still the stored one before applying a page.
    """
    SyncCursor.objects.get_or_create(name=name)
    return SyncCursor.objects.select_for_update().values_list("cursor", flat=True).get(name=name)


def save_cursor(name: str, cursor: str) -> None:
    SyncCursor.objects.update_or_create(name=name, defaults={"cursor": cursor})

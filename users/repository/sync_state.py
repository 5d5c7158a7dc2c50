"""Stored positions of incremental syncs (the ``SyncCursor`` rows).

A sync pays two statements per page for its position: :func:`lock_cursor`
(one ``SELECT … FOR UPDATE``) when the page's transaction starts and
:func:`advance_cursor` (one ``UPDATE``) before it commits. The row is created
only by the first lock ever taken for a feed.
"""

from __future__ import annotations

from django.utils import timezone

from users.models import SyncCursor


def get_cursor(name: str) -> str:
    """The stored cursor of the feed ``name``; "" (from the beginning) if none was stored yet."""
    return SyncCursor.objects.filter(name=name).values_list("cursor", flat=True).first() or ""


def _locked(name: str) -> list[str]:
    return list(SyncCursor.objects.select_for_update().filter(name=name).values_list("cursor", flat=True))


def lock_cursor(name: str) -> str:
    """The stored cursor, with its row locked until the surrounding transaction ends.

    Concurrent syncs of the same feed queue up here, so each can check that
    the position it fetched from is still the stored one before applying a page.
    One statement once the row exists.
    """
    rows = _locked(name)
    if not rows:
        SyncCursor.objects.get_or_create(name=name)
        rows = _locked(name)
    return rows[0]


def advance_cursor(name: str, cursor: str) -> None:
    """Store ``cursor`` in the row :func:`lock_cursor` locked in this transaction (one ``UPDATE``)."""
    updated = SyncCursor.objects.filter(name=name).update(cursor=cursor, updated_at=timezone.now())
    if updated != 1:
        raise RuntimeError(f"advance_cursor({name!r}): no locked cursor row; call lock_cursor first")


def save_cursor(name: str, cursor: str) -> None:
    """Store ``cursor``, creating the row if needed (outside a sync: tools and tests)."""
    SyncCursor.objects.update_or_create(name=name, defaults={"cursor": cursor})

"""The sync's cursor lock (``users.repository.sync_state.lock_cursor``) waits a bounded time."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import transaction

from tests.support import child_database_url
from users.models import SyncCursor
from users.repository import sync_state

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_cursor_held_by_another_transaction_is_waited_for_up_to_the_timeout_only():
    sync_state.save_cursor("feed", "c1")
    table = SyncCursor._meta.db_table
    with psycopg.connect(child_database_url()) as holder:
        holder.execute(f"SELECT cursor FROM {table} WHERE name = 'feed' FOR UPDATE")
        started = time.monotonic()
        with (
            pytest.raises(
                sync_state.CursorLocked, match="'feed' stayed locked by another transaction for 1 s"
            ),
            transaction.atomic(),
        ):
            sync_state.lock_cursor("feed", timeout=1)
        waited = time.monotonic() - started
        assert 0.9 < waited < 5, f"waited {waited:.1f} s"
    # Released: the lock is taken at once.
    with transaction.atomic():
        assert sync_state.lock_cursor("feed", timeout=1) == "c1"

"""After a sync that updated users, the users table is vacuumed: the user list's count reads no table page.

PostgreSQL answers ``COUNT(*)`` from an index alone only on pages a vacuum
marked all-visible; the sync's writes clear the mark, and its HOT updates
never bring autovacuum (``users.repository.sync_vacuum.mirrors_vacuum``). The
count's plan is read with ``EXPLAIN ANALYZE`` (sequential scans off, so that
a table of 500 users is counted from an index as a large one is).
"""

from __future__ import annotations

import json

import pytest
from django.db import connection, transaction

from users.models import User
from users.repository import sync_vacuum
from users.services import sync as sync_service

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def count_heap_fetches() -> int:
    """Table rows the users count read besides the index (``Heap Fetches`` of its index-only scan)."""
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        try:
            cursor.execute(f'EXPLAIN (ANALYZE, FORMAT JSON) SELECT COUNT(*) FROM "{User._meta.db_table}"')
            (plan,) = cursor.fetchone()
        finally:
            cursor.execute("RESET enable_seqscan; RESET enable_bitmapscan")
    plan = json.loads(plan) if isinstance(plan, str) else plan
    scan = plan[0]["Plan"]
    while scan["Node Type"] != "Index Only Scan":
        (scan,) = scan["Plans"]
    return int(scan["Heap Fetches"])


def sync() -> dict[str, int]:
    return sync_service.user_sync_from_upstream(should_stop=lambda: False)


def synced_and_vacuumed() -> None:
    """The demo's users mirrored, and the table vacuumed: the count starts reading no table page."""
    assert sync()["created"] > 0
    # A vacuum marks only rows whose commits are on disk; the sync's pages commit
    # asynchronously (a run that updated ends with a synchronous one), and this
    # local user's synchronous commit flushes theirs too.
    User.objects.create(username="local-flush", email="local-flush@example.org")
    assert sync_vacuum.mirrors_vacuum() is True
    assert count_heap_fetches() == 0


def test_the_count_reads_no_table_page_after_a_sync_that_updated(upstream_url, touch):
    synced_and_vacuumed()
    # The same kind of updates without the sync's vacuum leave the count reading the table.
    User.objects.filter(source=User.Source.THIRD_PARTY).update(display_name="changed here")
    assert count_heap_fetches() > 0
    sync_vacuum.mirrors_vacuum()
    assert count_heap_fetches() == 0

    touch(share=0.2, seed=5)
    assert sync()["updated"] > 0
    assert count_heap_fetches() == 0


def test_only_a_sync_that_updated_vacuums(upstream_url, touch, caplog):
    caplog.set_level("INFO", logger="users.sync")
    # New mirrors start autovacuum by their own count; deactivations' dead rows count.
    assert sync()["created"] > 0
    assert sync() == dict.fromkeys(sync_service.SYNC_COUNTERS, 0) | {"pages": 1}
    touch(share=0.05, seed=2, deleted=True)
    assert sync()["deactivated"] > 0
    assert "vacuumed" not in caplog.text

    touch(share=0.05, seed=3)
    assert sync()["updated"] > 0
    assert "users table vacuumed" in caplog.text


def test_a_stopping_sync_leaves_the_vacuum_to_the_next_run(upstream_url, touch, caplog):
    synced_and_vacuumed()
    caplog.set_level("INFO", logger="users.sync")
    touch(share=0.5, seed=7)
    pages: list[int] = []

    result = sync_service.user_sync_from_upstream(
        should_stop=lambda: bool(pages),
        on_progress=lambda counts: pages.append(counts["pages"]),
        page_size=100,
    )

    assert result["pages"] == 1 and result["updated"] > 0
    assert "vacuumed" not in caplog.text
    assert count_heap_fetches() > 0
    assert sync()["updated"] > 0
    assert "users table vacuumed" in caplog.text
    assert count_heap_fetches() == 0


def test_inside_a_transaction_nothing_is_vacuumed(upstream_url, touch):
    synced_and_vacuumed()
    touch(share=0.2, seed=5)
    with transaction.atomic():
        assert sync()["updated"] > 0
        assert sync_vacuum.mirrors_vacuum() is False
    assert count_heap_fetches() > 0

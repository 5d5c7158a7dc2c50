"""The vacuum of the users table after a sync that updated mirrors (PostgreSQL)."""

from __future__ import annotations

from django.db import connection

from users.models import User


def mirrors_vacuum() -> bool:
    """Vacuum the users table after a sync updated it (PostgreSQL, outside a transaction); ``True`` if run.

    The user list counts with ``COUNT(*)``, which PostgreSQL answers from an
    index alone only on pages a vacuum marked all-visible, and each row the
    sync writes clears that mark on its page: 2,000 changed mirrors touch most
    pages of a 100,000-user table, and each list request's count then reads the
    heap, which slows the list (bench/README.md, "Decisions"). Autovacuum does not come for
    updates: the sync's are HOT, PostgreSQL prunes their old versions as it
    reads the pages, and the count of dead rows that starts autovacuum stays
    low (most HOT updates are never counted), so the pages stay
    unmarked. (Inserts start autovacuum by their
    own count, and deactivations change an indexed column, so their dead rows
    count.) A vacuum visits only the unmarked
    pages and skips the indexes while they hold few dead entries;
    ``TRUNCATE false`` keeps it from taking the lock that would stop reads
    while it cuts empty pages off the table's end.

    A vacuum marks a page all-visible only once the commits of its rows are
    on disk, and the pages' transactions commit asynchronously (``sync_db.STEER_PAGE``):
    a run's last page commits synchronously (``PageWrites.durable``),
    which flushes the log of every page before it too. After a run that
    stopped early the last pages may stay unmarked until the next run's
    vacuum (a vacuum right after asynchronous commits marks no page).

    A vacuum cannot run inside a transaction: in one (a caller's atomic
    block, a test's), nothing is done and ``False`` returned.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return False
    with connection.cursor() as cursor:
        cursor.execute(f'VACUUM (TRUNCATE false) "{User._meta.db_table}"')
    return True

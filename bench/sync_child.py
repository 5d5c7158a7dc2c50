"""One variant of the sync benchmark in a process of its own (so its peak RSS is its own).

``python -m bench.sync_child product|naive|copy [--limit N] [--page-size 500]``
with the environment of :func:`bench.common.service_env` and
``THIRD_PARTY_USERS_URL``. Prints one line ``RESULT {json}`` with the seconds
spent in the sync itself (Django's start-up and the creation of the process-wide
upstream client are not counted) and the counts.

* ``product``: ``users.sync_service.user_sync_from_upstream``, as the job runs it.
* ``naive``: the same pages through the same client, then one
  ``update_or_create`` per record (baseline a).
* ``copy``: the same pages through the same client, then ``COPY`` of the rows
  into a bare table without indexes (baseline b: fetch + parse + the cheapest
  store PostgreSQL has).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

COPY_TABLE = "bench_copy_users"


def _pages(page_size: int, limit: int) -> Any:
    """The feed from the beginning, page by page, through the service's own client."""
    from users.repository import upstream

    cursor, seen = "", 0
    while True:
        page = upstream.fetch_changes(cursor=cursor, limit=page_size)
        yield page.users
        seen += len(page.users)
        cursor = page.next_cursor
        if not page.has_more or not page.users or (limit and seen >= limit):
            return


def run_product(page_size: int, limit: int) -> dict[str, Any]:
    from users.services import sync as sync_service

    counts = sync_service.user_sync_from_upstream(should_stop=lambda: False, page_size=page_size)
    return {"records": sum(v for k, v in counts.items() if k != "pages"), "counts": counts}


def run_naive(page_size: int, limit: int) -> dict[str, Any]:
    from django.utils import timezone

    from users.models import User

    records = 0
    for users in _pages(page_size, limit):
        for record in users:
            records += 1
            if record.deleted:
                User.objects.filter(external_id=record.id, source=User.Source.THIRD_PARTY).update(
                    is_active=False
                )
                continue
            User.objects.update_or_create(
                external_id=record.id,
                defaults={
                    "username": f"ext-{record.id}",
                    "email": record.email,
                    "display_name": record.display_name or "",
                    "source": User.Source.THIRD_PARTY,
                    "is_active": True,
                    "synced_at": timezone.now(),
                },
            )
    return {"records": records}


def run_copy(page_size: int, limit: int) -> dict[str, Any]:
    from django.db import connection, transaction

    records = 0
    for users in _pages(page_size, limit):
        with transaction.atomic(), connection.cursor() as cursor:
            raw = cursor.cursor  # the psycopg cursor under Django's wrapper
            with raw.copy(
                f"COPY {COPY_TABLE} (external_id, email, display_name, updated_at, deleted) FROM STDIN"
            ) as copy:
                for record in users:
                    copy.write_row(
                        (record.id, record.email, record.display_name, record.updated_at, record.deleted)
                    )
        records += len(users)
    return {"records": records}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["product", "naive", "copy"])
    parser.add_argument("--limit", type=int, default=0, help="Stop after about this many records (0: all).")
    parser.add_argument("--page-size", type=int, default=500)
    args = parser.parse_args()
    import django

    django.setup()
    from users.repository import upstream

    run = {"product": run_product, "naive": run_naive, "copy": run_copy}[args.mode]
    # The process-wide client (its TLS context alone takes about 50 ms to build) is made
    # before the clock starts, as in a serving process, where it outlives the runs.
    upstream.get_client()
    started = time.perf_counter()
    result = run(args.page_size, args.limit)
    result["seconds"] = time.perf_counter() - started
    result["max_rss_mib"] = peak_rss_mib()
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")


def peak_rss_mib() -> float:
    """This process's peak resident set size since it started (``VmHWM``).

    Not the kernel's ``ru_maxrss`` as the parent's ``wait4`` reads it: that also counts the pages
    the child shared with its parent between the fork and the exec, the benchmark's own.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    main()

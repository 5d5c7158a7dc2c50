"""The service under load, as benchmarks 2 to 4 need it: synced users, gunicorn, and the sync's work.

The load of benchmark 2 with jobs on is: ``GET /api/users/`` at a fixed rate,
the sync job every 5 s (``JOB_OVERRIDES``) with the upstream changing 100 of
its users every 5 s, and one full sync of every upstream user in the window
(the stored cursor is reset, so the next tick pages through the whole feed).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import common

SYNC_JOB = "users.sync_third_party_users"
SYNC_EVERY = 5


@dataclass
class Stage:
    """The bench database with ``users`` synced mirrors, the demo upstream serving them, a staff token."""

    out: Path
    upstream: common.Process
    upstream_url: str
    token: str
    users: int

    def stop(self) -> None:
        self.upstream.stop()


def prepare(name: str, *, users: int) -> Stage:
    out = common.run_dir(name)
    common.log(f"logs in {out}")
    common.recreate_database()
    upstream, url = common.start_upstream(users, out=out)
    common.setup_django(THIRD_PARTY_USERS_URL=url)
    from users.services import sync as sync_service

    common.log(f"loading {users:,} users through the sync")
    counts = sync_service.user_sync_from_upstream(should_stop=lambda: False, page_size=1000)
    common.log(f"loaded: {counts}")
    vacuum()
    return Stage(out=out, upstream=upstream, upstream_url=url, token=common.staff_token(), users=users)


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def gunicorn(
    stage: Stage, name: str, *, jobs: bool, overrides: dict[str, Any] | None = None
) -> tuple[Any, str]:
    """gunicorn with 2 workers; with ``jobs``, the sync every 5 s against the demo upstream.

    Every server starts on a vacuumed database: the sync's updates in an
    earlier phase clear the visibility map of most of the users table's pages
    (2,000 random users touch most of its 2,500 pages), and each request's
    ``COUNT(*)`` then reads the heap instead of the index alone, so a phase
    run after a jobs-on phase would be slower for that reason only.
    """
    vacuum()
    env = common.service_env(JOB_ENABLE="1" if jobs else "0")
    if jobs:
        job_overrides = {SYNC_JOB: {"interval": SYNC_EVERY, "misfire_grace": SYNC_EVERY}, **(overrides or {})}
        env.update(THIRD_PARTY_USERS_URL=stage.upstream_url, JOB_OVERRIDES=json.dumps(job_overrides))
    return common.start_gunicorn(out=stage.out, name=name, env=env)


def wait_for_leader(job: str, *, after: datetime, timeout: float = 60) -> None:
    """Until a run of ``job`` scheduled after ``after`` exists (a leader is scheduling)."""
    from stayy.models import JobRun

    common.wait_for(
        lambda: JobRun.objects.filter(job_name=job, scheduled_for__gte=after).exists(),
        timeout=timeout,
        what=f"a scheduled run of {job}",
    )


def full_sync_now() -> None:
    """Reset the stored cursor: the next sync tick pages through the whole feed."""
    from users.models import SyncCursor
    from users.services import sync as sync_service

    SyncCursor.objects.filter(name=sync_service.SYNC_CURSOR_NAME).update(cursor="")


class UpstreamChanges:
    """Changes ``count`` upstream users every ``every`` seconds until stopped (a background thread)."""

    def __init__(self, stage: Stage, *, count: int = 100, every: float = SYNC_EVERY) -> None:
        self._stage, self._count, self._every = stage, count, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="upstream-changes", daemon=True)
        self.rounds = 0

    def __enter__(self) -> UpstreamChanges:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        share = self._count / self._stage.users
        while not self._stop.wait(self._every):
            self.rounds += 1
            common.upstream_post(
                self._stage.upstream_url, "/v1/_admin/touch", {"share": share, "seed": self.rounds}
            )


@dataclass
class SyncRuns:
    runs: int
    by_status: dict[str, int]
    full_runs: int
    longest_s: float
    updated: int

    def describe(self) -> str:
        statuses = ", ".join(f"{status} {count}" for status, count in sorted(self.by_status.items()))
        return (
            f"{self.runs} sync runs ({statuses}); {self.full_runs} full sync(s) of every user; "
            f"longest {self.longest_s:.1f} s; {self.updated:,} users updated"
        )


def sync_runs(*, since: datetime, until: datetime, users: int) -> SyncRuns:
    """What the sync job did between ``since`` and ``until`` (from its run history)."""
    from stayy.models import JobRun

    rows = list(
        JobRun.objects.filter(job_name=SYNC_JOB, scheduled_for__gte=since, scheduled_for__lte=until).values(
            "status", "duration_ms", "summary"
        )
    )
    by_status: dict[str, int] = {}
    full = updated = 0
    longest = 0.0
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
        summary = row["summary"] or {}
        seen = sum(
            int(summary.get(key, 0)) for key in ("created", "updated", "unchanged", "deactivated", "rejected")
        )
        if seen >= users * 0.9:
            full += 1
        updated += int(summary.get("updated", 0))
        longest = max(longest, (row["duration_ms"] or 0) / 1000)
    return SyncRuns(len(rows), by_status, full, longest, updated)

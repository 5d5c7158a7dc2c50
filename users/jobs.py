"""Scheduled jobs of the users domain: thin handlers that call :mod:`users.services`."""

from __future__ import annotations

from typing import Any

from stayy.runtime import activity
from stayy.scheduling import JobContext, JobSkipped, job
from users.conf import users_settings
from users.services import accounts, sync


@job("users.refresh_user_stats", every=30, timeout=20)
def refresh_user_stats(ctx: JobContext) -> dict[str, int]:
    """Recompute the user stats and put them in the cache the stats endpoint reads."""
    stats = accounts.user_stats_refresh()
    return {"total": stats["total"], "active": stats["active"], "inactive": stats["inactive"]}


# --- Sync from the third-party user service ---


@job("users.sync_third_party_users", every=300, timeout=600)
def sync_third_party_users(ctx: JobContext) -> dict[str, Any]:
    """Mirror new, changed and deleted users of the third-party user service (THIRD_PARTY_USERS_URL)."""
    if not sync.user_sync_configured():
        raise JobSkipped("THIRD_PARTY_USERS_URL is not set")
    # Between pages the run yields to the requests this process serves
    # (THIRD_PARTY_USERS_SYNC_PAUSE; a cancel ends that wait at once), and
    # within a page its loops give way to the requests in flight.
    counts = sync.user_sync_from_upstream(
        should_stop=lambda: ctx.cancelled,
        on_progress=ctx.report_progress,
        # Only a process that serves requests has anyone to yield to (not runjobs).
        pause=users_settings.third_party_sync_pause if activity.serves_requests() else 0.0,
        wait=ctx.sleep,
        give_way=activity.give_way,
    )
    # The sync returns normally when asked to stop; this records the run as cancelled.
    ctx.check()
    return counts

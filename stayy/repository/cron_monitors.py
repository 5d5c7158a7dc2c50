"""Sentry Crons: a check-in at each run's start (``in_progress``) and end (``ok`` or ``error``).

Active only when sentry-sdk is initialised (``SENTRY_DSN``, in ``config/settings.py``). The
monitor is named after the job (its slug: the job name with ``-`` for ``.``) and carries the job's
schedule as its config, so Sentry creates or updates it with each check-in and reports a missed
or overrunning run by itself. The SDK sends from a background thread of its own.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import sentry_sdk
from sentry_sdk.crons import capture_checkin

logger = logging.getLogger("stayy.jobs")


def enabled() -> bool:
    return sentry_sdk.get_client().is_active()


def monitor_slug(job_name: str) -> str:
    return job_name.replace(".", "-")


def monitor_config(
    *, interval: int | None, cron: str | None, timezone: str, misfire_grace: float, timeout: float
) -> dict[str, Any]:
    """Sentry's monitor config for a schedule: a crontab line, or an interval in whole minutes (or
    hours or days when it divides into them; Sentry counts no shorter unit)."""
    schedule: dict[str, Any]
    if cron is not None:
        schedule = {"type": "crontab", "value": cron}
    else:
        seconds = interval or 60
        for unit, length in (("day", 86400), ("hour", 3600)):
            if seconds % length == 0:
                schedule = {"type": "interval", "value": seconds // length, "unit": unit}
                break
        else:
            schedule = {"type": "interval", "value": max(1, math.ceil(seconds / 60)), "unit": "minute"}
    return {
        "schedule": schedule,
        "timezone": timezone,
        "checkin_margin": max(1, math.ceil(misfire_grace / 60)),
        "max_runtime": max(1, math.ceil(timeout / 60)),
    }


def check_in(
    *,
    job_name: str,
    status: str,
    config: dict[str, Any] | None = None,
    check_in_id: str | None = None,
    duration: float | None = None,
) -> str | None:
    """Send one check-in; returns its id (for the closing one). Never raises: a monitoring
    failure must not fail a run."""
    if not enabled():
        return None
    try:
        return capture_checkin(
            monitor_slug=monitor_slug(job_name),
            check_in_id=check_in_id,
            status=status,
            duration=duration,
            monitor_config=config,  # type: ignore[arg-type]
        )
    except Exception:
        logger.exception("Sentry check-in of %s not sent", job_name)
        return None

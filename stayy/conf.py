"""The ``STAYY`` settings namespace, read through one object.

``config/settings.py`` parses and validates the environment; this module only
gives the rest of the code typed attribute access, like DRF's ``api_settings``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


class StayySettings:
    """Attribute access to ``settings.STAYY``, re-read on every access (tests override it)."""

    @property
    def _values(self) -> dict[str, Any]:
        return settings.STAYY

    @property
    def job_enable(self) -> bool:
        return bool(self._values["JOB_ENABLE"])

    @property
    def job_name(self) -> str:
        return str(self._values["JOB_NAME"])

    @property
    def job_overrides(self) -> dict[str, Any]:
        return dict(self._values["JOB_OVERRIDES"])

    @property
    def lease_ttl(self) -> float:
        return float(self._values["LEASE_TTL"])

    @property
    def shutdown_grace(self) -> float:
        return float(self._values["SHUTDOWN_GRACE"])

    @property
    def run_retention_days(self) -> int:
        return int(self._values["RUN_RETENTION_DAYS"])

    @property
    def run_stale_after(self) -> float:
        return float(self._values["RUN_STALE_AFTER"])

    @property
    def catchup_window(self) -> float:
        return float(self._values["CATCHUP_WINDOW"])

    @property
    def tick_threads(self) -> int:
        """Idle job threads (each with its database connection) a job server keeps for the next ticks."""
        return int(self._values["TICK_THREADS"])

    @property
    def run_log_max_bytes(self) -> int:
        """How much of a run's log lines its row keeps (``JOB_RUN_LOG_MAX_BYTES``)."""
        return int(self._values["RUN_LOG_MAX_BYTES"])

    @property
    def redis_url(self) -> str:
        return str(self._values["REDIS_URL"])

    @property
    def alert_webhook_url(self) -> str:
        return str(self._values.get("ALERT_WEBHOOK_URL", ""))

    @property
    def alert_webhook_secret(self) -> str:
        return str(self._values.get("ALERT_WEBHOOK_SECRET", ""))

    @property
    def alert_max_per_hour(self) -> int:
        """Alerts a job sends per channel within an hour (``JOB_ALERT_MAX_PER_HOUR``); then one summary."""
        return int(self._values.get("ALERT_MAX_PER_HOUR", 12))

    @property
    def alert_base_url(self) -> str:
        return str(self._values.get("ALERT_BASE_URL", ""))

    @property
    def heartbeat_interval(self) -> float:
        """How often a process refreshes the heartbeat of the runs it executes."""
        return max(1.0, self.run_stale_after / 5)


stayy_settings = StayySettings()

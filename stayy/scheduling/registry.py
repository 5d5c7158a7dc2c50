"""The job registry: the ``@job`` decorator, discovery of ``jobs.py`` modules and overrides.

Like Zulip's ``@assign_queue``, declaring a job is one decorator in the app
that owns it. ``JOB_OVERRIDES`` is applied on top at startup; an override for
an unknown job or with an invalid value is a :class:`~config.env.ConfigError`
naming the job. Live edits (stored in the catalog) go on top of both, with the
same keys and checks (:func:`edited`).

Besides its schedule and limits a job has policies, the same in ``@job`` and
in ``JOB_OVERRIDES``: ``overlap`` ("skip" a tick that finds the job running,
or "queue" it: at most one waits), ``retries`` and ``retry_backoff`` (a
failed, timed-out or lost run is run again as a new run, after
``retry_backoff`` seconds doubling per attempt), ``atomic`` (the handler's
writes and its run's end commit together) and ``jitter`` (each tick starts up
to that many seconds late, by an amount derived from the job and the tick).
``alert_after`` is how long the job may go without a success before it is
reported overdue (default: three intervals, or a day for a crontab schedule).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.utils.module_loading import autodiscover_modules

from config.env import ConfigError
from stayy.conf import stayy_settings
from stayy.scheduling.context import JobContext
from stayy.scheduling.triggers import InvalidSchedule, Schedule, parse_schedule

logger = logging.getLogger("stayy.jobs")

Handler = Callable[[JobContext], Mapping[str, Any] | None]

JOB_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_POLICY_KEYS = {"overlap", "retries", "retry_backoff", "atomic", "jitter", "alert_after"}
_OVERRIDE_KEYS = {"interval", "cron", "timezone", "enabled", "timeout", "misfire_grace", *_POLICY_KEYS}
OVERLAP_CHOICES = ("skip", "queue")
#: Retry waits double per attempt up to this many seconds.
RETRY_BACKOFF_MAX = 3600.0
#: A crontab job is overdue after this many seconds without a success, unless ``alert_after`` says.
CRON_ALERT_AFTER = 86400.0
#: An interval job is overdue after this many of its intervals without a success, unless ``alert_after`` says.
INTERVAL_ALERT_AFTER = 3


@dataclass(frozen=True)
class JobSpec:
    """A scheduled job, declared once and run by any job server (embedded or standalone)."""

    name: str
    handler: Handler
    schedule: Schedule
    timeout: float
    misfire_grace: float
    enabled: bool = True
    description: str = ""
    overlap: str = "skip"
    retries: int = 0
    retry_backoff: float = 10.0
    atomic: bool = False
    jitter: float = 0.0
    #: Seconds without a success before the job is overdue; ``None``: the default (:attr:`overdue_after`).
    alert_after: float | None = None

    @property
    def overdue_after(self) -> float:
        """Seconds without a success after which the job is reported overdue."""
        if self.alert_after is not None:
            return self.alert_after
        seconds = getattr(self.schedule, "seconds", None)
        return float(INTERVAL_ALERT_AFTER * seconds) if seconds else CRON_ALERT_AFTER

    def jitter_delay(self, tick: datetime) -> timedelta:
        """How late ``tick`` starts: the same in every process, from the job's name and the tick."""
        if not self.jitter:
            return timedelta(0)
        digest = hashlib.sha256(f"{self.name}@{tick.timestamp():.6f}".encode()).digest()
        fraction = int.from_bytes(digest[:8], "big") / 2**64
        return timedelta(seconds=self.jitter * fraction)

    def retry_delay(self, attempt: int) -> float:
        """Seconds before retry ``attempt`` (1..``retries``): the backoff doubling, capped."""
        return min(RETRY_BACKOFF_MAX, self.retry_backoff * 2 ** (attempt - 1))


class UnknownJob(LookupError):
    """No job of that name is registered."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown job {_shown(name)}; known jobs: {', '.join(job_names()) or 'none'}")
        self.name = name


def _shown(name: str) -> str:
    """A job name as error messages quote it: repr'd (one line), and cut if it is absurdly long."""
    return repr(name) if len(name) <= 200 else f"{name[:200]!r}... ({len(name)} characters)"


_declared: dict[str, JobSpec] = {}
_effective: dict[str, JobSpec] = {}


def _positive_seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise InvalidSchedule(f"{what} must be a positive number of seconds, got {value!r}")
    return float(value)


def _policies(values: Mapping[str, Any]) -> dict[str, Any]:
    """The policy options among ``values``, checked (raises :class:`InvalidSchedule` naming one)."""
    checked: dict[str, Any] = {}
    if "overlap" in values:
        if values["overlap"] not in OVERLAP_CHOICES:
            raise InvalidSchedule(f"overlap must be 'skip' or 'queue', got {values['overlap']!r}")
        checked["overlap"] = values["overlap"]
    if "retries" in values:
        retries = values["retries"]
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            raise InvalidSchedule(f"retries must be a whole number from 0 to 100, got {retries!r}")
        checked["retries"] = retries
    if "retry_backoff" in values:
        checked["retry_backoff"] = _positive_seconds(values["retry_backoff"], "retry_backoff")
    if "atomic" in values:
        if not isinstance(values["atomic"], bool):
            raise InvalidSchedule(f"atomic must be true or false, got {values['atomic']!r}")
        checked["atomic"] = values["atomic"]
    if "jitter" in values:
        jitter = values["jitter"]
        if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter < math.inf:
            raise InvalidSchedule(f"jitter must be 0 or a positive number of seconds, got {jitter!r}")
        checked["jitter"] = float(jitter)
    if values.get("alert_after") is not None:
        checked["alert_after"] = _positive_seconds(values["alert_after"], "alert_after")
    return checked


def job(
    name: str,
    *,
    every: int | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    timeout: float = 300,
    misfire_grace: float = 60,
    enabled: bool = True,
    overlap: str = "skip",
    retries: int = 0,
    retry_backoff: float = 10.0,
    atomic: bool = False,
    jitter: float = 0.0,
    alert_after: float | None = None,
) -> Callable[[Handler], Handler]:
    """Declare the decorated function as the handler of a scheduled job (policies: module docs)."""

    def register(handler: Handler) -> Handler:
        if not JOB_NAME_RE.match(name):
            raise ValueError(f"job name {name!r} must look like 'app.job_name' (lower case, dots)")
        if name in _declared and _declared[name].handler is not handler:
            raise ValueError(f"job {name!r} is declared twice")
        policies = {
            "overlap": overlap,
            "retries": retries,
            "retry_backoff": retry_backoff,
            "atomic": atomic,
            "jitter": jitter,
            "alert_after": alert_after,
        }
        try:
            checked = _policies(policies)
        except InvalidSchedule as exc:
            raise ValueError(f"job {name!r}: {exc}") from None
        spec = JobSpec(
            name=name,
            handler=handler,
            schedule=parse_schedule(interval=every, cron=cron, timezone=timezone),
            timeout=_positive_seconds(timeout, "timeout"),
            misfire_grace=_positive_seconds(misfire_grace, "misfire_grace"),
            enabled=enabled,
            description=(handler.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "),
            **checked,
        )
        _declared[name] = spec
        _effective[name] = spec
        return handler

    return register


def autodiscover() -> None:
    """Import the ``jobs`` module of every installed app."""
    autodiscover_modules("jobs")


def apply_overrides(overrides: Mapping[str, Any] | None = None) -> None:
    """Recompute the effective specs from the declared ones plus ``JOB_OVERRIDES``."""
    if overrides is None:
        overrides = stayy_settings.job_overrides
    effective = {name: override_spec(spec, None) for name, spec in _declared.items()}
    for name, override in overrides.items():
        if name not in _declared:
            raise ConfigError(
                "JOB_OVERRIDES", f"unknown job {_shown(name)}; known jobs: {', '.join(sorted(_declared))}"
            )
        try:
            effective[name] = override_spec(_declared[name], override)
        except InvalidSchedule as exc:
            raise ConfigError("JOB_OVERRIDES", f"job {name!r}: {exc}") from None
    _effective.clear()
    _effective.update(effective)


def override_spec(spec: JobSpec, override: object) -> JobSpec:
    """Return ``spec`` with one override object applied (raises :class:`InvalidSchedule`)."""
    if override is None:
        return spec
    if not isinstance(override, dict):
        raise InvalidSchedule(f"override must be a JSON object, got {override!r}")
    unknown = set(override) - _OVERRIDE_KEYS
    if unknown:
        allowed = ", ".join(sorted(_OVERRIDE_KEYS))
        shown = ", ".join(_shown(key) for key in sorted(unknown))
        raise InvalidSchedule(f"unknown override key(s) {shown}; allowed: {allowed}")
    changes: dict[str, Any] = {}
    if "interval" in override or "cron" in override:
        changes["schedule"] = parse_schedule(
            interval=override.get("interval"), cron=override.get("cron"), timezone=override.get("timezone")
        )
    elif "timezone" in override:
        raise InvalidSchedule("'timezone' needs 'cron' in the same override")
    if "enabled" in override:
        if not isinstance(override["enabled"], bool):
            raise InvalidSchedule(f"enabled must be true or false, got {override['enabled']!r}")
        changes["enabled"] = override["enabled"]
    if "timeout" in override:
        changes["timeout"] = _positive_seconds(override["timeout"], "timeout")
    if "misfire_grace" in override:
        changes["misfire_grace"] = _positive_seconds(override["misfire_grace"], "misfire_grace")
    changes.update(_policies(override))
    return replace(spec, **changes)


def edited(spec: JobSpec, edits: Mapping[str, Any] | None) -> JobSpec:
    """``spec`` with the job's live edits on top; edits the code no longer admits are logged and left out."""
    if not edits:
        return spec
    try:
        return override_spec(spec, dict(edits))
    except InvalidSchedule as exc:
        logger.error("%s: its live edits no longer apply (%s); it runs as configured", spec.name, exc)
        return spec


def get(name: str) -> JobSpec:
    """The effective spec of a job (raises :class:`UnknownJob`)."""
    try:
        return _effective[name]
    except KeyError:
        raise UnknownJob(name) from None


def all_jobs() -> list[JobSpec]:
    return [_effective[name] for name in sorted(_effective)]


def job_names() -> list[str]:
    return sorted(_effective)

"""The job registry: the ``@job`` decorator, discovery of ``jobs.py`` modules and overrides.

Like Zulip's ``@assign_queue``, declaring a job is one decorator in the app
that owns it. ``JOB_OVERRIDES`` is applied on top at startup; an override for
an unknown job or with an invalid value is a :class:`~config.env.ConfigError`
naming the job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from django.utils.module_loading import autodiscover_modules

from config.env import ConfigError
from stayy.conf import stayy_settings
from stayy.scheduling.context import JobContext
from stayy.scheduling.triggers import InvalidSchedule, Schedule, parse_schedule

Handler = Callable[[JobContext], Mapping[str, Any] | None]

JOB_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_OVERRIDE_KEYS = {"interval", "cron", "timezone", "enabled", "timeout", "misfire_grace"}


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


def job(
    name: str,
    *,
    every: int | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    timeout: float = 300,
    misfire_grace: float = 60,
    enabled: bool = True,
) -> Callable[[Handler], Handler]:
    """Declare the decorated function as the handler of a scheduled job."""

    def register(handler: Handler) -> Handler:
        if not JOB_NAME_RE.match(name):
            raise ValueError(f"job name {name!r} must look like 'app.job_name' (lower case, dots)")
        if name in _declared and _declared[name].handler is not handler:
            raise ValueError(f"job {name!r} is declared twice")
        spec = JobSpec(
            name=name,
            handler=handler,
            schedule=parse_schedule(interval=every, cron=cron, timezone=timezone),
            timeout=_positive_seconds(timeout, "timeout"),
            misfire_grace=_positive_seconds(misfire_grace, "misfire_grace"),
            enabled=enabled,
            description=(handler.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "),
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
    return replace(spec, **changes)


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

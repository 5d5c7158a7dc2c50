"""Schedules of jobs: a fixed-grid interval or a standard 5-field crontab line.

Both build APScheduler triggers, with three fixes over APScheduler's defaults
(see DESIGN.md §6):

* interval grids start at a fixed UTC epoch, so every process computes the
  same ticks and their claims collide in the database as they should;
* cron day-of-week follows standard crontab (0 and 7 are Sunday) and, as in
  Vixie cron, a line restricting both day-of-month and day-of-week fires when
  either matches;
* a cron job with a fixed hour does not fire again when a DST fall-back
  repeats its wall time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

#: Every interval grid is anchored here, identical in every process.
GRID_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

_WEEKDAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


class InvalidSchedule(ValueError):
    """A schedule that cannot be parsed; the message says what is wrong."""


class Schedule(Protocol):
    @property
    def key(self) -> str: ...

    def build_trigger(self) -> BaseTrigger: ...

    def describe(self) -> str: ...


def _plural(value: int, unit: str) -> str:
    return f"{value} {unit}" if value == 1 else f"{value} {unit}s"


@dataclass(frozen=True)
class IntervalSchedule:
    """Every ``seconds`` seconds, on a grid starting at :data:`GRID_EPOCH`."""

    seconds: int

    def __post_init__(self) -> None:
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, int) or self.seconds < 1:
            raise InvalidSchedule(f"interval must be a whole number of seconds >= 1, got {self.seconds!r}")

    @property
    def key(self) -> str:
        return f"interval:{self.seconds}"

    def build_trigger(self) -> BaseTrigger:
        return IntervalTrigger(seconds=self.seconds, start_date=GRID_EPOCH, timezone=UTC)

    def describe(self) -> str:
        s = self.seconds
        if s % 86400 == 0:
            return "every day" if s == 86400 else f"every {_plural(s // 86400, 'day')}"
        if s % 3600 == 0:
            return "every hour" if s == 3600 else f"every {_plural(s // 3600, 'hour')}"
        if s % 60 == 0:
            return "every minute" if s == 60 else f"every {_plural(s // 60, 'minute')}"
        return "every second" if s == 1 else f"every {_plural(s, 'second')}"


def _expand_weekdays(field: str) -> list[int]:
    """Expand a standard crontab day-of-week field into Sunday=0 weekday numbers."""
    days: set[int] = set()
    for part in field.lower().split(","):
        if not part:
            raise InvalidSchedule(f"empty item in day-of-week field {field!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise InvalidSchedule(f"bad step {step_text!r} in day-of-week field {field!r}")
            step = int(step_text)
        if base == "*":
            first, last = 0, 6
        else:
            first_text, dash, last_text = base.partition("-")
            first = _weekday_number(first_text, field)
            last = _weekday_number(last_text, field) if dash else (6 if step_text else first)
            if first > last:
                raise InvalidSchedule(f"range {base!r} runs backwards in day-of-week field {field!r}")
        days.update(day % 7 for day in range(first, last + 1, step))
    return sorted(days)


def _weekday_number(text: str, field: str) -> int:
    if text in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES.index(text)
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    raise InvalidSchedule(f"bad day of week {text!r} in {field!r} (use 0-7 or sun-sat; 0 and 7 are Sunday)")


def _fold_end(instant: datetime, tz: ZoneInfo) -> datetime:
    """The first whole minute after ``instant`` that is not the second pass of a repeated wall time."""
    cursor = instant.astimezone(UTC).replace(second=0, microsecond=0)
    for _ in range(24 * 60):
        cursor += timedelta(minutes=1)
        if cursor.astimezone(tz).fold == 0:
            return cursor
    raise InvalidSchedule(f"time zone {tz} repeats wall times for over a day")


class _DstSafeCron(CronTrigger):
    """A cron trigger that handles the wall times a DST fall-back repeats.

    APScheduler 3.11 returns the same instant forever once it is inside the
    repeated hour. Here a job with a fixed hour skips the second pass (it
    runs once per wall-clock time, as in Vixie cron); a job with a wildcard
    hour runs by real time, repeating its fires of the first pass.
    """

    def __init__(self, *, skip_repeated: bool, **fields: object) -> None:
        super().__init__(**fields)  # type: ignore[arg-type]
        self.skip_repeated = skip_repeated

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        start = now.astimezone(UTC)
        if previous_fire_time is not None:
            # The fire time after the previous one (APScheduler then catches up to now);
            # never the previous one again, or APScheduler loops on it forever.
            start = previous_fire_time.astimezone(UTC) + timedelta(microseconds=1)
        candidate = self._next_from(start)
        return None if candidate is None else candidate.astimezone(UTC)

    def _next_from(self, start: datetime) -> datetime | None:
        tz = self.timezone
        start = start.astimezone(UTC)  # wall-clock arithmetic on aware datetimes ignores DST
        local = start.astimezone(tz)
        if local.fold == 1:
            if self.skip_repeated:
                return self._next_from(_fold_end(start, tz))
            shift = local.replace(fold=0).utcoffset() - local.utcoffset()  # type: ignore[operator]
            first_pass = super().get_next_fire_time(None, start - shift)
            if first_pass is not None:
                second_pass = first_pass.astimezone(UTC) + shift
                if second_pass.astimezone(tz).fold == 1:
                    return second_pass.astimezone(tz)
            return self._next_from(_fold_end(start, tz))
        candidate = super().get_next_fire_time(None, start)
        if candidate is not None and self.skip_repeated and candidate.astimezone(tz).fold == 1:
            return self._next_from(_fold_end(candidate, tz))
        return candidate

    def __getstate__(self) -> dict[str, object]:
        state = super().__getstate__()
        state["skip_repeated"] = self.skip_repeated
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.skip_repeated = bool(state.pop("skip_repeated", True))
        super().__setstate__(state)


@dataclass(frozen=True)
class CronSchedule:
    """A standard 5-field crontab line (minute hour day-of-month month day-of-week) in a time zone."""

    expression: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidSchedule(f"unknown time zone {self.timezone!r}") from None
        self.build_trigger()  # validates every field

    @property
    def fields(self) -> list[str]:
        fields = self.expression.split()
        if len(fields) != 5:
            raise InvalidSchedule(
                f"cron needs 5 fields (minute hour day-of-month month day-of-week), got {self.expression!r}"
            )
        return fields

    @property
    def key(self) -> str:
        return f"cron:{' '.join(self.fields)}@{self.timezone}"

    def build_trigger(self) -> BaseTrigger:
        minute, hour, day, month, weekday_field = self.fields
        weekdays = _expand_weekdays(weekday_field)
        weekday = "*" if len(weekdays) == 7 else ",".join(_WEEKDAY_NAMES[d] for d in weekdays)
        # Vixie cron runs jobs with a wildcard hour by real time across DST;
        # jobs with a fixed hour run once per wall-clock time.
        skip_repeated = not hour.startswith("*")
        tz = ZoneInfo(self.timezone)

        def make(day_field: str, weekday_field_: str) -> CronTrigger:
            try:
                return _DstSafeCron(
                    skip_repeated=skip_repeated,
                    minute=minute,
                    hour=hour,
                    day=day_field,
                    month=month.lower(),
                    day_of_week=weekday_field_,
                    timezone=tz,
                )
            except ValueError as exc:
                raise InvalidSchedule(f"invalid cron expression {self.expression!r}: {exc}") from None

        day_restricted = not day.startswith("*")
        weekday_restricted = not weekday_field.startswith("*")
        if day_restricted and weekday_restricted:
            return OrTrigger([make(day, "*"), make("*", weekday)])
        return make(day, weekday)

    def describe(self) -> str:
        minute, hour, day, month, weekday = self.fields
        zone = "" if self.timezone == "UTC" else f" {self.timezone}"
        if minute.isdigit() and hour.isdigit() and (day, month) == ("*", "*"):
            at = f"{int(hour):02d}:{int(minute):02d}{zone or ' UTC'}"
            if weekday == "*":
                return f"daily at {at}"
            days = ", ".join(_WEEKDAY_NAMES[d].capitalize() for d in _expand_weekdays(weekday))
            return f"at {at} on {days}"
        if minute.isdigit() and (hour, day, month, weekday) == ("*", "*", "*", "*"):
            return f"hourly at minute {int(minute)}"
        return f"cron '{' '.join(self.fields)}'{zone}"


def parse_schedule(*, interval: object = None, cron: object = None, timezone: object = None) -> Schedule:
    """Build a schedule from the declarative fields of a job or an override."""
    if (interval is None) == (cron is None):
        raise InvalidSchedule("give exactly one of 'interval' (seconds) or 'cron' (5-field crontab line)")
    if interval is not None:
        if timezone is not None:
            raise InvalidSchedule("'timezone' applies to cron schedules only")
        if not isinstance(interval, int) or isinstance(interval, bool):
            raise InvalidSchedule(f"interval must be a whole number of seconds, got {interval!r}")
        return IntervalSchedule(interval)
    if not isinstance(cron, str):
        raise InvalidSchedule(f"cron must be a string, got {cron!r}")
    if timezone is not None and not isinstance(timezone, str):
        raise InvalidSchedule(f"timezone must be a string, got {timezone!r}")
    return CronSchedule(cron, timezone or "UTC")


def fire_times(schedule: Schedule, *, after: datetime, until: datetime, limit: int) -> list[datetime]:
    """The schedule's fire times in ``(after, until]``, oldest first, at most ``limit`` (the newest kept)."""
    trigger = schedule.build_trigger()
    times: list[datetime] = []
    previous: datetime | None = None
    cursor = after.astimezone(UTC) + timedelta(microseconds=1)
    while True:
        nxt = trigger.get_next_fire_time(previous, cursor)
        if nxt is None or nxt > until:
            break
        if nxt > after:
            times.append(nxt)
            if len(times) > limit:
                times.pop(0)
        previous = nxt
        cursor = nxt.astimezone(UTC) + timedelta(microseconds=1)
    return times

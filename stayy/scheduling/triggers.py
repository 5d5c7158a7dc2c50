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


def _apscheduler_field(field: str, low: int, high: int) -> str:
    """Rewrite steps APScheduler refuses but crontab accepts (``1-1/1``, ``*/60``, ``5-10/20``).

    Crontab reads a step larger than its range as "just the first value";
    APScheduler raises. Anything else is passed on unchanged (and validated there).
    """
    items = []
    for item in field.split(","):
        base, slash, step_text = item.partition("/")
        if slash and step_text.isdigit() and int(step_text) >= 1:
            if base == "*":
                first, last = low, high
            else:
                first_text, dash, last_text = base.partition("-")
                if not first_text.isdigit() or (dash and not last_text.isdigit()):
                    items.append(item)
                    continue
                first = int(first_text)
                last = int(last_text) if dash else high
            if low <= first <= last <= high and int(step_text) > last - first:
                item = str(first)
        items.append(item)
    return ",".join(items)


# The largest UTC offset change any time zone has made at once (a few hours); nonexistent
# wall times of a spring-forward lie at most this far before the instants they map to.
_MAX_SHIFT = timedelta(hours=3)


class _DstSafeCron(CronTrigger):
    """A crontab line in a time zone, matched against wall-clock time and mapped to instants.

    APScheduler's own trigger loses or repeats fires around DST changes (it
    returns the same instant forever inside a repeated hour, and drops all but
    the first of several wall times a spring-forward skips). Here the crontab
    fields are matched on naive wall-clock times (the parent class runs in
    UTC, which has no DST) and each match is turned into instants:

    * fixed hour (``skip_repeated``): exactly one run per matching wall time;
      a wall time the fall-back repeats runs on its first pass only, one the
      spring-forward skips runs as far after the jump as it lay after its
      start (02:30 in Berlin runs at 03:30 CEST), as Python's ``fold=0`` reads it;
    * wildcard hour: by real time, as Vixie cron runs such jobs: a repeated
      wall time runs twice, a skipped one not at all.
    """

    def __init__(self, *, skip_repeated: bool, zone: ZoneInfo, **fields: object) -> None:
        super().__init__(timezone=UTC, **fields)  # type: ignore[arg-type]
        self.skip_repeated = skip_repeated
        self.zone = zone

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        start = now.astimezone(UTC)
        if previous_fire_time is not None:
            # The fire time after the previous one (APScheduler then catches up to now);
            # never the previous one again, or APScheduler loops on it forever.
            start = previous_fire_time.astimezone(UTC) + timedelta(microseconds=1)
        return self._first_at_or_after(start)

    def _instants(self, wall: datetime) -> list[datetime]:
        """The instants at which the matching wall-clock time ``wall`` (naive) fires."""
        first = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        exists = first.astimezone(self.zone).replace(tzinfo=None) == wall
        if self.skip_repeated:
            return [first]
        if not exists:
            return []
        second = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        return [first] if second == first else [first, second]

    def _next_wall(self, wall: datetime) -> datetime | None:
        """The first wall-clock time at or after ``wall`` (naive) that the crontab fields match."""
        found = super().get_next_fire_time(None, wall.replace(tzinfo=UTC))
        return None if found is None else found.replace(tzinfo=None)

    def _first_at_or_after(self, start: datetime) -> datetime | None:
        offset = start.astimezone(self.zone).utcoffset() or timedelta(0)
        # Wall times a spring-forward skipped shortly before ``start`` map to instants after it
        # (fixed hour); ahead of a fall-back, the second pass of earlier wall times lies after
        # it (wildcard hour). Start the search early enough to see both.
        back = offset - ((start - _MAX_SHIFT).astimezone(self.zone).utcoffset() or timedelta(0))
        if not self.skip_repeated:
            back = max(back, offset - ((start + _MAX_SHIFT).astimezone(self.zone).utcoffset() or offset))
        wall: datetime | None = (start + offset - max(back, timedelta(0))).replace(tzinfo=None)
        best: datetime | None = None
        while wall is not None:
            wall = self._next_wall(wall)
            if wall is None:
                break
            instants = self._instants(wall)
            # Both mappings grow with the wall time: once a wall's first instant is past
            # the best candidate, no later wall can beat it.
            bound = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
            if best is not None and bound >= best:
                break
            for instant in instants:
                if instant >= start and (best is None or instant < best):
                    best = instant
            wall += timedelta(seconds=1)
        return best

    def __getstate__(self) -> dict[str, object]:
        state = super().__getstate__()
        state["skip_repeated"] = self.skip_repeated
        state["zone"] = self.zone.key
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.skip_repeated = bool(state.pop("skip_repeated", True))
        self.zone = ZoneInfo(str(state.pop("zone", "UTC")))
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
        trigger = self.build_trigger()  # validates every field
        if trigger.get_next_fire_time(None, GRID_EPOCH) is None:
            raise InvalidSchedule(f"cron {self.expression!r} never fires (no such date)")

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
                    minute=_apscheduler_field(minute, 0, 59),
                    hour=_apscheduler_field(hour, 0, 23),
                    day=_apscheduler_field(day_field, 1, 31),
                    month=_apscheduler_field(month.lower(), 1, 12),
                    day_of_week=weekday_field_,
                    zone=tz,
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

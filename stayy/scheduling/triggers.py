"""Schedules of jobs: a fixed-grid interval or a standard 5-field crontab line, and their fire times.

Both build APScheduler triggers, with these choices over APScheduler's defaults:

* interval grids start at a fixed UTC epoch, so every process computes the
  same ticks and their claims collide in the database as they should;
* a crontab line is read as cron(8) reads it (:mod:`stayy.scheduling.crontab`):
  0 and 7 are Sunday, and, as in Vixie cron, a line restricting both
  day-of-month and day-of-week fires when either matches;
* across DST, a line with a fixed hour runs exactly once per matching
  wall-clock time (never twice when a fall-back repeats it, never lost when a
  spring-forward skips it); a line whose hour starts with ``*`` runs by real
  time.

A schedule also says itself in words (:meth:`Schedule.describe`), the one
phrasing the catalog, the API, ``runjobs --list`` and the dashboard show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from cron_descriptor import ExpressionDescriptor, Options

from stayy.scheduling.crontab import WEEKDAY_NAMES, CronLine, InvalidCron, parse_cron, ranges

#: Every interval grid is anchored here, identical in every process.
GRID_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

# The largest UTC offset change any time zone has made at once (a few hours); nonexistent
# wall times of a spring-forward lie at most this far before the instants they map to.
_MAX_SHIFT = timedelta(hours=3)
#: A skipped wall time whose instant is already another wall time's run runs this much later.
_SKIPPED_AFTER = timedelta(seconds=1)


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


class _WallClockCron(BaseTrigger):
    """A crontab line in a time zone, matched against wall-clock time and mapped to instants.

    APScheduler's own trigger loses or repeats fires around DST changes (it
    returns the same instant forever inside a repeated hour, and drops all but
    the first of several wall times a spring-forward skips). Here the crontab
    fields are matched on naive wall-clock times by APScheduler cron triggers
    running in UTC (which has no DST), one per Vixie day branch, and each
    matching wall time is turned into instants:

    * fixed hour (``once_per_wall_time``): exactly one run per matching wall
      time; a wall time the fall-back repeats runs on its first pass only, one
      the spring-forward skips runs as long after the jump as it lay after its
      start (02:30 in Berlin runs at 03:30 CEST, as Python's ``fold=0`` reads
      it), or, when a later wall time already runs at that instant, one second
      after it (03:30 in Riga on 2021-03-28 runs at 04:30:01 EEST, after 04:30);
    * wildcard hour: by real time, as Vixie cron runs such jobs: a repeated
      wall time runs twice, a skipped one not at all.
    """

    def __init__(self, branches: list[CronTrigger], *, zone: ZoneInfo, once_per_wall_time: bool) -> None:
        self.branches = branches
        self.zone = zone
        self.once_per_wall_time = once_per_wall_time

    def __repr__(self) -> str:
        return f"<_WallClockCron {self.branches!r} in {self.zone.key}>"

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        start = now.astimezone(UTC)
        if previous_fire_time is not None:
            # The fire time after the previous one (APScheduler then catches up to now);
            # never the previous one again, or APScheduler loops on it forever.
            start = previous_fire_time.astimezone(UTC) + timedelta(microseconds=1)
        return self._first_at_or_after(start)

    def _next_wall(self, wall: datetime) -> datetime | None:
        """The first wall-clock time at or after ``wall`` (naive) that the crontab line matches."""
        found = [
            fire
            for branch in self.branches
            if (fire := branch.get_next_fire_time(None, wall.replace(tzinfo=UTC))) is not None
        ]
        return min(found).replace(tzinfo=None) if found else None

    def _runs_at(self, instant: datetime) -> bool:
        """Whether an existing wall time runs at ``instant`` (the first pass of a matching wall time)."""
        wall = instant.astimezone(self.zone).replace(tzinfo=None)
        return self._next_wall(wall) == wall and wall.replace(tzinfo=self.zone, fold=0).astimezone(
            UTC
        ) == instant.astimezone(UTC)

    def _instants(self, wall: datetime) -> list[datetime]:
        """The instants at which the matching wall-clock time ``wall`` (naive) fires."""
        first = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        exists = first.astimezone(self.zone).replace(tzinfo=None) == wall
        if self.once_per_wall_time:
            while not exists and self._runs_at(first):
                first += _SKIPPED_AFTER
            return [first]
        if not exists:
            return []
        second = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        return [first] if second == first else [first, second]

    def _first_at_or_after(self, start: datetime) -> datetime | None:
        offset = start.astimezone(self.zone).utcoffset() or timedelta(0)
        # Wall times a spring-forward skipped shortly before ``start`` map to instants after it
        # (fixed hour); ahead of a fall-back, the second pass of earlier wall times lies after
        # it (wildcard hour). Start the search early enough to see both.
        back = offset - ((start - _MAX_SHIFT).astimezone(self.zone).utcoffset() or timedelta(0))
        if not self.once_per_wall_time:
            back = max(back, offset - ((start + _MAX_SHIFT).astimezone(self.zone).utcoffset() or offset))
        wall: datetime | None = (start + offset - max(back, timedelta(0)) - _SKIPPED_AFTER).replace(
            tzinfo=None
        )
        best: datetime | None = None
        while wall is not None:
            wall = self._next_wall(wall)
            if wall is None:
                break
            # No later wall time runs before this one's earliest reading: its fold=0 instant, or for
            # a skipped one, its fold=1 reading (which lies before the jump).
            bound = min(wall.replace(tzinfo=self.zone, fold=fold).astimezone(UTC) for fold in (0, 1))
            if best is not None and bound >= best:
                break
            for instant in self._instants(wall):
                if instant >= start and (best is None or instant < best):
                    best = instant
            wall += timedelta(seconds=1)
        return best


@dataclass(frozen=True)
class CronSchedule:
    """A standard 5-field crontab line (minute hour day-of-month month day-of-week) in a time zone."""

    expression: str
    timezone: str = "UTC"
    line: CronLine = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.expression, str):
            raise InvalidSchedule(f"cron must be a string, got {self.expression!r}")
        try:
            line = parse_cron(self.expression)
        except InvalidCron as exc:
            raise InvalidSchedule(f"bad cron {self.expression!r}: {exc}") from None
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise InvalidSchedule(f"unknown time zone {self.timezone!r}") from None
        if not line.days_can_match and not line.either_day:
            raise InvalidSchedule(f"cron {self.expression!r} never fires (no such date)")
        object.__setattr__(self, "line", line)

    @property
    def fields(self) -> list[str]:
        return self.expression.split()

    @property
    def key(self) -> str:
        return f"cron:{' '.join(self.fields)}@{self.timezone}"

    def build_trigger(self) -> BaseTrigger:
        line = self.line

        def branch(days: frozenset[int] | None, weekdays: frozenset[int] | None) -> CronTrigger:
            return CronTrigger(
                minute=ranges(line.minutes),
                hour=ranges(line.hours),
                day="*" if days is None else ranges(days),
                month=ranges(line.months),
                day_of_week="*" if weekdays is None else ",".join(WEEKDAY_NAMES[d] for d in sorted(weekdays)),
                timezone=UTC,
            )

        if not line.either_day:
            branches = [branch(line.days, line.weekdays)]
        else:
            # Vixie cron: a day matching either field runs. A day-of-month that no month of the
            # line has (31 in February) leaves only the weekday branch.
            branches = [branch(None, line.weekdays)]
            if line.days_can_match:
                branches.append(branch(line.days, None))
        return _WallClockCron(
            branches, zone=ZoneInfo(self.timezone), once_per_wall_time=not line.wildcard_hour
        )

    def describe(self) -> str:
        """``daily at 03:00 Europe/Berlin`` for a daily line, else cron-descriptor's words and the zone."""
        line = self.line
        _, _, day, month, weekday = line.canonical()
        if len(line.minutes) == len(line.hours) == 1 and (day, month, weekday) == ("*", "*", "*"):
            return f"daily at {min(line.hours):02d}:{min(line.minutes):02d} {self.timezone}"
        # cron-descriptor joins two restricted day fields with "or"; a line where one of them starts
        # with "*" (every other day, and Fridays) needs both, which it cannot say.
        if not line.either_day and day != "*" and weekday != "*":
            return f"cron '{' '.join(self.fields)}' ({self.timezone})"
        try:
            words = ExpressionDescriptor(" ".join(line.canonical()), _descriptor_options()).get_description()
        except Exception:  # cron-descriptor raises its own and plain errors alike on what it cannot read
            return f"cron '{' '.join(self.fields)}' ({self.timezone})"
        return f"{words[:1].lower()}{words[1:]} ({self.timezone})"


def _descriptor_options() -> Options:
    options = Options()
    options.use_24hour_time_format = True
    options.throw_exception_on_parse_error = True
    options.verbose = False
    return options


def schedule_from_key(key: str) -> Schedule:
    """The schedule a :attr:`Schedule.key` stands for (``interval:30``, ``cron:0 3 * * *@Europe/Berlin``)."""
    kind, _, rest = key.partition(":")
    if kind == "interval" and rest.isascii() and rest.isdigit():
        return IntervalSchedule(int(rest))
    if kind == "cron" and rest:
        expression, at, timezone = rest.rpartition("@")
        return CronSchedule(expression, timezone or "UTC") if at else CronSchedule(rest)
    raise InvalidSchedule(f"not a schedule key: {key!r}")


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


def next_fire_times(schedule: Schedule, *, after: datetime, count: int) -> list[datetime]:
    """The schedule's next ``count`` fire times after ``after``, oldest first."""
    trigger = schedule.build_trigger()
    times: list[datetime] = []
    previous: datetime | None = None
    cursor = after.astimezone(UTC) + timedelta(microseconds=1)
    while len(times) < count:
        nxt = trigger.get_next_fire_time(previous, cursor)
        if nxt is None:
            break
        if nxt > after:
            times.append(nxt)
        previous = nxt
        cursor = nxt.astimezone(UTC) + timedelta(microseconds=1)
    return times


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

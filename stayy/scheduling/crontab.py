"""A standard 5-field crontab line read as cron(8) reads it: each field becomes its set of values.

Items are ``*``, ``N``, ``N-M``, each optionally followed by ``/STEP``; ``N/STEP``
runs from N to the end of the field, and a step longer than its range means
its first value. Months and days of week may be names (``jan``, ``mon``, any
case); days of week run 0-7, 0 and 7 both Sunday. Numbers are ASCII digits
only. Anything else raises :class:`InvalidCron`, whose message names the
field and the bad item. The fields are also given back in a canonical form
(ranges and steps of plain numbers) that other tools read the same way.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass

MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
WEEKDAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

_NUMBER = re.compile(r"[0-9]+")
#: The longest each month can be (February in a leap year).
_MONTH_DAYS = {month: calendar.monthrange(2000, month)[1] for month in range(1, 13)}


class InvalidCron(ValueError):
    """A crontab line that cannot be read; the message says which field and item."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    hint: str = ""

    def value(self, text: str, item: str) -> int:
        if text.lower() in self.names:
            return self.names.index(text.lower()) + self.low  # jan is 1, sun is 0
        if _NUMBER.fullmatch(text) and self.low <= int(text) <= self.high:
            return int(text)
        where = "" if item == text else f" in {item!r}"
        raise InvalidCron(f"bad {self.name} {text!r}{where} (use {self.hint or f'{self.low}-{self.high}'})")

    def parse(self, text: str) -> frozenset[int]:
        values: set[int] = set()
        for item in text.split(","):
            if not item:
                raise InvalidCron(f"empty item in {self.name} field {text!r}")
            base, slash, step_text = item.partition("/")
            step = 1
            if slash:
                if not _NUMBER.fullmatch(step_text) or int(step_text) < 1:
                    raise InvalidCron(
                        f"bad step {step_text!r} in {self.name} field {text!r} (a whole number >= 1)"
                    )
                step = int(step_text)
            if base == "*":
                first, last = self.low, self.high
            else:
                first_text, dash, last_text = base.partition("-")
                first = self.value(first_text, item)
                last = self.value(last_text, item) if dash else (self.high if slash else first)
                if first > last:
                    raise InvalidCron(f"range {base!r} runs backwards in {self.name} field {text!r}")
            values.update(range(first, last + 1, step))
        return frozenset(values)


MINUTE = _Field("minute", 0, 59)
HOUR = _Field("hour", 0, 23)
DAY = _Field("day of month", 1, 31)
MONTH = _Field("month", 1, 12, tuple(MONTH_NAMES), "1-12 or jan-dec")
WEEKDAY = _Field("day of week", 0, 7, tuple(WEEKDAY_NAMES), "0-7 or sun-sat; 0 and 7 are Sunday")


def ranges(values: frozenset[int]) -> str:
    """``values`` as a list of ranges: ``{1, 2, 3, 7}`` → ``1-3,7``."""
    runs: list[list[int]] = []
    for value in sorted(values):
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _canonical(values: frozenset[int], low: int, high: int, *, steps: bool = True) -> str:
    """``values`` as one crontab field of plain numbers: ``*``, ``*/N``, ``A-B/N`` or a list of ranges."""
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return "*"
    if steps and len(ordered) >= 3:
        step = ordered[1] - ordered[0]
        if ordered == list(range(ordered[0], ordered[-1] + 1, step)) and step > 1:
            if ordered[0] == low and ordered[-1] + step > high:
                return f"*/{step}"
            return f"{ordered[0]}-{ordered[-1]}/{step}"
    return ranges(values)


@dataclass(frozen=True)
class CronLine:
    """The value sets of a crontab line; ``weekdays`` are 0-6 with Sunday 0."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    #: Vixie cron: when both day fields are restricted (neither starts with ``*``), a day matching
    #: either runs; otherwise a day must match both.
    either_day: bool
    #: The hour field starts with ``*``: across DST the line runs by real time, not by wall time.
    wildcard_hour: bool

    @property
    def days_can_match(self) -> bool:
        """Whether some month of the line has some day of month of the line (``31 2`` has none)."""
        return any(day <= _MONTH_DAYS[month] for month in self.months for day in self.days)

    def canonical(self) -> list[str]:
        """The five fields as plain numbers (names and Sunday-as-7 resolved), as cron reads them."""
        if self.either_day and (len(self.days) == 31 or len(self.weekdays) == 7):
            every_day = _canonical(self.months, 1, 12)  # either field matching every day: every day
            return [_canonical(self.minutes, 0, 59), _canonical(self.hours, 0, 23), "*", every_day, "*"]
        # Days of week as a list of ranges, Sunday as 0 or as 7, whichever reads shorter (Fri-Sun: 5-7).
        weekdays = min(
            _canonical(self.weekdays, 0, 6, steps=False),
            _canonical(
                (self.weekdays - {0}) | {7} if 0 in self.weekdays else self.weekdays, 0, 7, steps=False
            ),
            key=len,
        )
        return [
            _canonical(self.minutes, 0, 59),
            _canonical(self.hours, 0, 23),
            _canonical(self.days, 1, 31),
            _canonical(self.months, 1, 12),
            "*" if len(self.weekdays) == 7 else weekdays,
        ]


def parse_cron(expression: str) -> CronLine:
    """Read a crontab line (minute hour day-of-month month day-of-week); raises :class:`InvalidCron`."""
    fields = expression.split()
    if len(fields) != 5:
        raise InvalidCron(
            f"cron needs 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    minute, hour, day, month, weekday = fields
    day_star, weekday_star = day.startswith("*"), weekday.startswith("*")
    return CronLine(
        minutes=MINUTE.parse(minute),
        hours=HOUR.parse(hour),
        days=DAY.parse(day),
        months=MONTH.parse(month),
        weekdays=frozenset(value % 7 for value in WEEKDAY.parse(weekday)),
        either_day=not day_star and not weekday_star,
        wildcard_hour=hour.startswith("*"),
    )

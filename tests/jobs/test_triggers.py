"""Schedules: the fixed interval grid, standard crontab weekdays, Vixie day matching and DST."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from stayy.scheduling.triggers import (
    GRID_EPOCH,
    CronSchedule,
    IntervalSchedule,
    InvalidSchedule,
    fire_times,
    parse_schedule,
)

BERLIN = ZoneInfo("Europe/Berlin")
SUNDAY = datetime(2025, 6, 1, tzinfo=UTC)  # a Sunday


def cron_days(expression: str, *, after: datetime = SUNDAY, days: int = 14) -> list[datetime]:
    """Fire times of a daily-at-03:00-style line over ``days`` days starting at ``after``."""
    return fire_times(
        CronSchedule(expression),
        after=after - timedelta(microseconds=1),
        until=after + timedelta(days=days),
        limit=1000,
    )


def weekdays(times: list[datetime]) -> set[str]:
    return {t.strftime("%a") for t in times}


def drive_like_apscheduler(
    trigger: BaseTrigger, *, start: datetime, until: datetime, latency: timedelta
) -> list[datetime]:
    """Fire ``trigger`` the way APScheduler 3.11's scheduler does, waking ``latency`` after each fire time.

    ``Job._get_run_times(now)`` asks ``get_next_fire_time(previous, now)`` until the answer is in
    the future, then ``_process_jobs`` asks once more for the next run time. A trigger that
    returns the same instant twice makes the first loop spin forever; here that is a failure.
    """
    fired: list[datetime] = []
    next_run = trigger.get_next_fire_time(None, start)
    while next_run is not None and next_run <= until:
        now = next_run + latency
        run_times: list[datetime] = []
        candidate: datetime | None = next_run
        while candidate is not None and candidate <= now:
            if run_times:
                assert candidate > run_times[-1], (
                    f"get_next_fire_time({run_times[-1].isoformat()}, now={now.isoformat()}) "
                    f"returned {candidate.isoformat()} again: the scheduler would loop forever"
                )
            run_times.append(candidate)
            candidate = trigger.get_next_fire_time(candidate, now)
        fired.extend(run_times)
        next_run = trigger.get_next_fire_time(run_times[-1], now)
        assert next_run is None or next_run > run_times[-1], (
            f"next run {next_run} is not after the last fire {run_times[-1]}"
        )
    return fired


# --- interval ------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [1, 7, 30, 3600, 86400])
def test_interval_grid_is_the_same_whatever_now_is(seconds):
    nows = [
        datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(2025, 1, 1, 12, 0, 3, 999999, tzinfo=UTC),
        datetime(2026, 7, 19, 4, 31, 17, tzinfo=UTC),
    ]
    for now in nows:
        # Two processes building the trigger at slightly different times.
        first = IntervalSchedule(seconds).build_trigger().get_next_fire_time(None, now)
        second = IntervalSchedule(seconds).build_trigger().get_next_fire_time(None, now + timedelta(0, 0, 1))
        assert first is not None and second is not None
        assert (first - GRID_EPOCH).total_seconds() % seconds == 0, first
        assert first == second or second - first == timedelta(seconds=seconds)
        assert now <= first < now + timedelta(seconds=seconds)


def test_interval_fire_times_lie_on_the_utc_epoch_grid():
    times = fire_times(
        IntervalSchedule(7),
        after=datetime(2025, 3, 1, 10, 0, 1, 500, tzinfo=UTC),
        until=datetime(2025, 3, 1, 10, 1, 0, tzinfo=UTC),
        limit=100,
    )
    assert times, "no ticks in a minute of a 7 s schedule"
    assert all((t - GRID_EPOCH).total_seconds() % 7 == 0 for t in times)
    assert all(b - a == timedelta(seconds=7) for a, b in itertools.pairwise(times))


def test_fire_times_is_half_open_and_keeps_the_newest():
    after = datetime(2025, 3, 1, 10, 0, 0, tzinfo=UTC)  # on the 10 s grid
    times = fire_times(IntervalSchedule(10), after=after, until=after + timedelta(seconds=60), limit=100)
    assert times[0] == after + timedelta(seconds=10)
    assert times[-1] == after + timedelta(seconds=60)
    newest = fire_times(IntervalSchedule(10), after=after, until=after + timedelta(seconds=60), limit=2)
    assert newest == times[-2:]


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (1, "every second"),
        (5, "every 5 seconds"),
        (90, "every 90 seconds"),
        (60, "every minute"),
        (120, "every 2 minutes"),
        (3600, "every hour"),
        (7200, "every 2 hours"),
        (86400, "every day"),
        (172800, "every 2 days"),
    ],
)
def test_interval_describe(seconds, words):
    assert IntervalSchedule(seconds).describe() == words
    assert IntervalSchedule(seconds).key == f"interval:{seconds}"


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        (CronSchedule("30 2 * * *"), "daily at 02:30 UTC"),
        (CronSchedule("30 2 * * *", "Europe/Berlin"), "daily at 02:30 Europe/Berlin"),
        (CronSchedule("0 3 * * 0"), "at 03:00 UTC on Sun"),
        (CronSchedule("0 3 * * 1-5"), "at 03:00 UTC on Mon, Tue, Wed, Thu, Fri"),
        (CronSchedule("5 * * * *"), "hourly at minute 5"),
        (CronSchedule("*/5 * * * *"), "cron '*/5 * * * *'"),
    ],
)
def test_cron_describe(schedule, words):
    assert schedule.describe() == words


# --- cron day of week --------------------------------------------------------


@pytest.mark.parametrize("expression", ["0 3 * * 0", "0 3 * * 7", "0 3 * * sun", "0 3 * * SUN"])
def test_sunday_is_0_and_7(expression):
    times = cron_days(expression)
    assert weekdays(times) == {"Sun"}
    assert [t.day for t in times] == [1, 8]
    assert all((t.hour, t.minute) == (3, 0) for t in times)


@pytest.mark.parametrize("expression", ["0 3 * * 1-5", "0 3 * * mon-fri"])
def test_monday_to_friday(expression):
    times = cron_days(expression)
    assert weekdays(times) == {"Mon", "Tue", "Wed", "Thu", "Fri"}
    assert len(times) == 10


def test_every_minute_on_weekdays_skips_the_weekend():
    saturday = datetime(2025, 6, 7, tzinfo=UTC)
    times = fire_times(
        CronSchedule("* * * * 1-5"), after=saturday, until=saturday + timedelta(days=2, minutes=2), limit=10
    )
    monday = datetime(2025, 6, 9, tzinfo=UTC)
    assert times == [monday, monday + timedelta(minutes=1), monday + timedelta(minutes=2)]


@pytest.mark.parametrize(
    ("expression", "days"),
    [
        ("0 3 * * 5-7", {"Fri", "Sat", "Sun"}),
        ("0 3 * * 0-2", {"Sun", "Mon", "Tue"}),
        ("0 3 * * 1,3", {"Mon", "Wed"}),
        ("0 3 * * */2", {"Sun", "Tue", "Thu", "Sat"}),
        ("0 3 * * 1-5/2", {"Mon", "Wed", "Fri"}),
        ("0 3 * * sat,sun", {"Sat", "Sun"}),
        ("0 3 * * 1-7", {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}),
    ],
)
def test_weekday_ranges_lists_and_steps(expression, days):
    assert weekdays(cron_days(expression)) == days


def test_day_of_month_and_day_of_week_both_restricted_fire_when_either_matches():
    august = datetime(2025, 8, 1, tzinfo=UTC)  # 13 August 2025 is a Wednesday
    either = cron_days("0 0 13 * 5", after=august, days=31)
    assert [t.day for t in either] == [1, 8, 13, 15, 22, 29]
    assert [t.day for t in cron_days("0 0 13 * *", after=august, days=31)] == [13]
    assert [t.day for t in cron_days("0 0 * * 5", after=august, days=31)] == [1, 8, 15, 22, 29]


def test_a_day_of_month_starting_with_star_restricts_together_with_the_weekday():
    # Vixie cron: if either day field starts with '*', both must match.
    august = datetime(2025, 8, 1, tzinfo=UTC)
    assert [t.day for t in cron_days("0 0 */2 * 5", after=august, days=31)] == [1, 15, 29]


# --- invalid schedules -------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "timezone", "expected"),
    [
        ("0 3 * *", "UTC", "cron needs 5 fields"),
        ("0 3 * * * *", "UTC", "cron needs 5 fields"),
        ("61 * * * *", "UTC", "61"),
        ("* 24 * * *", "UTC", "24"),
        ("* * * * 8", "UTC", "bad day of week '8'"),
        ("* * * * 5-1", "UTC", "runs backwards"),
        ("* * * * funday", "UTC", "bad day of week 'funday'"),
        ("* * * * */0", "UTC", "bad step"),
        ("* * * * *", "Mars/Olympus_Mons", "unknown time zone 'Mars/Olympus_Mons'"),
    ],
)
def test_invalid_cron_raises_with_a_useful_message(expression, timezone, expected):
    with pytest.raises(InvalidSchedule) as info:
        CronSchedule(expression, timezone)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "exactly one of"),
        ({"interval": 5, "cron": "* * * * *"}, "exactly one of"),
        ({"interval": 0}, "interval"),
        ({"interval": "5"}, "interval"),
        ({"interval": True}, "interval"),
        ({"interval": 1.5}, "interval"),
        ({"interval": 5, "timezone": "UTC"}, "cron schedules only"),
        ({"cron": 5}, "cron must be a string"),
    ],
)
def test_parse_schedule_rejects(kwargs, expected):
    with pytest.raises(InvalidSchedule) as info:
        parse_schedule(**kwargs)
    assert expected in str(info.value)


# --- DST -----------------------------------------------------------------------


def berlin_day(year: int, month: int, day: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, day, tzinfo=BERLIN)
    end = datetime(year, month, day, tzinfo=BERLIN) + timedelta(days=1)
    return start.astimezone(UTC) - timedelta(microseconds=1), end.astimezone(UTC) - timedelta(microseconds=1)


def test_daily_at_0230_fires_once_on_the_fall_back_day():
    after, until = berlin_day(2025, 10, 26)
    times = fire_times(CronSchedule("30 2 * * *", "Europe/Berlin"), after=after, until=until, limit=10)
    assert times == [datetime(2025, 10, 26, 0, 30, tzinfo=UTC)]  # 02:30 CEST, the first pass


def test_daily_at_0230_fires_once_on_the_spring_forward_day():
    after, until = berlin_day(2025, 3, 30)
    times = fire_times(CronSchedule("30 2 * * *", "Europe/Berlin"), after=after, until=until, limit=10)
    assert len(times) == 1
    assert times[0].astimezone(BERLIN).date() == datetime(2025, 3, 30).date()


@pytest.mark.parametrize(("day", "real_hours"), [((2025, 10, 26), 25), ((2025, 3, 30), 23)])
def test_hourly_fires_once_per_real_hour_across_dst(day, real_hours):
    after, until = berlin_day(*day)
    times = fire_times(CronSchedule("0 * * * *", "Europe/Berlin"), after=after, until=until, limit=100)
    utc_hours = [t.astimezone(UTC).replace(tzinfo=None) for t in times]
    assert len(times) == real_hours
    assert len(set(utc_hours)) == len(utc_hours)
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(utc_hours))


DRIVEN = [("0 * * * *", None), ("30 2 * * *", 1), ("*/20 * * * *", None), ("30 2 * * 0", 1)]
DST_DAYS = [(2025, 10, 26), (2025, 3, 30)]


def assert_driven_fires_match(expression: str, per_day: int | None, day: tuple[int, int, int], latency):
    schedule = CronSchedule(expression, "Europe/Berlin")
    after, until = berlin_day(*day)
    fired = drive_like_apscheduler(schedule.build_trigger(), start=after, until=until, latency=latency)
    expected = fire_times(schedule, after=after, until=until, limit=1000)
    assert fired == expected
    assert len(set(fired)) == len(fired)
    if per_day is not None:
        assert len(fired) == per_day


@pytest.mark.parametrize(
    "latency",
    [timedelta(microseconds=1), timedelta(milliseconds=3), timedelta(seconds=2)],
    ids=["1us", "3ms", "2s"],
)
@pytest.mark.parametrize("day", DST_DAYS, ids=["fall-back", "spring-forward"])
@pytest.mark.parametrize(("expression", "per_day"), DRIVEN)
def test_driven_like_the_scheduler_never_fires_the_same_instant_twice(expression, per_day, day, latency):
    assert_driven_fires_match(expression, per_day, day, latency)


def test_driven_like_the_scheduler_waking_exactly_on_the_fire_time():
    """The scheduler's clock can read exactly the fire time it woke for (``now == previous``)."""
    for expression, per_day in DRIVEN:
        for day in DST_DAYS:
            assert_driven_fires_match(expression, per_day, day, timedelta(0))


def test_driven_like_the_scheduler_across_a_long_stall():
    # The scheduler slept 3 hours through the fall-back: every owed fire is returned once, in order.
    schedule = CronSchedule("0 * * * *", "Europe/Berlin")
    trigger = schedule.build_trigger()
    start = datetime(2025, 10, 25, 23, 0, tzinfo=UTC) - timedelta(microseconds=1)
    first = trigger.get_next_fire_time(None, start)
    now = first + timedelta(hours=3, minutes=1)
    run_times = [first]
    while True:
        nxt = trigger.get_next_fire_time(run_times[-1], now)
        if nxt is None or nxt > now:
            break
        assert nxt > run_times[-1]
        run_times.append(nxt)
    assert [t.astimezone(UTC).hour for t in run_times] == [23, 0, 1, 2]


def test_next_fire_time_when_the_scheduler_wakes_exactly_on_the_fire_time():
    """APScheduler's own CronTrigger moves past ``previous`` when ``now == previous``; ours must too.

    ``Job._get_run_times`` loops ``while next_run_time <= now``: an answer equal to ``previous``
    never ends that loop, and the scheduler thread hangs.
    """
    fire = datetime(2025, 6, 2, 3, 0, tzinfo=UTC)
    stock = CronTrigger.from_crontab("0 3 * * *", timezone=UTC)
    assert stock.get_next_fire_time(fire, fire) == fire + timedelta(days=1)
    ours = CronSchedule("0 3 * * *").build_trigger()
    assert ours.get_next_fire_time(fire, fire) == fire + timedelta(days=1)

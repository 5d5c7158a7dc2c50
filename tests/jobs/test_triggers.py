"""Schedules: the fixed interval grid, standard crontab weekdays, Vixie day matching and DST."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from hypothesis import given, settings, strategies as st

from stayy.scheduling.timer import MAX_WAIT
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
        (CronSchedule("0 3 * * 0"), "at 03:00, only on Sunday (UTC)"),
        (CronSchedule("0 3 * * 1-5"), "at 03:00, Monday through Friday (UTC)"),
        (CronSchedule("5 * * * *"), "at 5 minutes past the hour (UTC)"),
        (CronSchedule("*/5 * * * *"), "every 5 minutes (UTC)"),
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
        ("0 3 * * 1/2", {"Mon", "Wed", "Fri", "Sun"}),  # N/STEP runs to the end of the field, 7
        ("0 3 * * MON-fri/2", {"Mon", "Wed", "Fri"}),
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


def test_a_day_of_month_no_month_has_leaves_the_weekday_and_costs_nothing():
    # Vixie cron: "31 2" never matches, so "0 0 31 2 0" fires on February's Sundays. Ten years of
    # them are computed within one wake of the timer (searching for a 31 February took that per fire).
    started = time.monotonic()
    times = fire_times(
        CronSchedule("0 0 31 2 0"),
        after=datetime(2025, 1, 1, tzinfo=UTC),
        until=datetime(2035, 1, 1, tzinfo=UTC),
        limit=1000,
    )
    elapsed = time.monotonic() - started
    days = (datetime(2025, 1, 1) + timedelta(days=n) for n in range(3652))
    assert [t.date() for t in times] == [d.date() for d in days if d.month == 2 and d.strftime("%a") == "Sun"]
    assert len(times) == 41
    assert elapsed < MAX_WAIT, f"{elapsed:.2f} s for ten years of fire times"


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
        ("* * * * *", "../../etc/passwd", "unknown time zone"),
        ("0 0 30 2 *", "UTC", "never fires"),
        ("0 0 31 4,6,9,11 *", "UTC", "never fires"),
        # Month names keep what follows them; APScheduler read only the name.
        ("0 0 1 JAN-61 *", "UTC", "bad month '61'"),
        ("0 0 1 JAN-2/ *", "UTC", "bad step ''"),
        ("0 0 1 jan/x *", "UTC", "bad step 'x'"),
        ("0 0 lastfoo * *", "UTC", "bad day of month 'lastfoo'"),
        ("0 0 last * *", "UTC", "bad day of month 'last'"),  # not standard crontab
        # A step needs a number after its slash.
        ("0 0 * * 2/", "UTC", "bad step ''"),
        ("0 0 * * MON-2/", "UTC", "bad step ''"),
        ("*/ * * * *", "UTC", "bad step ''"),
        # Numbers are ASCII digits: a superscript one or an Arabic-Indic three is no number.
        ("¹ * * * *", "UTC", "bad minute '¹'"),
        ("0 0 * * ¹", "UTC", "bad day of week '¹'"),
        ("0 0 * * 1-¹", "UTC", "bad day of week '¹'"),
        ("0 0 * * */¹", "UTC", "bad step '¹'"),
        ("٣ * * * *", "UTC", "bad minute '٣'"),
        ("0 0 * * ٣", "UTC", "bad day of week '٣'"),
        ("0 ٣ * * *", "UTC", "bad hour '٣'"),
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


@pytest.mark.parametrize(
    ("expression", "minutes"),
    [("1-1/1 * * * *", {1}), ("*/60 * * * *", {0}), ("5-10/20 * * * *", {5}), ("50/30 * * * *", {50})],
)
def test_steps_longer_than_their_range_mean_the_first_value_as_in_crontab(expression, minutes):
    times = fire_times(CronSchedule(expression), after=SUNDAY, until=SUNDAY + timedelta(hours=3), limit=100)
    assert len(times) == 3
    assert {t.minute for t in times} == minutes


@pytest.mark.parametrize(
    ("expression", "months"),
    [
        ("0 0 1 Jan-Aug/2 *", [1, 3, 5, 7]),
        ("0 0 1 1-8/2 *", [1, 3, 5, 7]),
        ("0 0 1 jan,MAR-apr *", [1, 3, 4]),
        ("0 0 1 nov/1 *", [11, 12]),
    ],
)
def test_month_names_keep_their_ranges_and_steps(expression, months):
    times = fire_times(
        CronSchedule(expression),
        after=datetime(2025, 1, 1, tzinfo=UTC) - timedelta(microseconds=1),
        until=datetime(2025, 12, 31, tzinfo=UTC),
        limit=100,
    )
    assert [t.month for t in times] == months


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


def local_times(expression: str, zone: str, day: tuple[int, int, int]) -> list[str]:
    tz = ZoneInfo(zone)
    start = datetime(*day, tzinfo=tz).astimezone(UTC) - timedelta(microseconds=1)
    end = (datetime(*day, tzinfo=tz) + timedelta(days=1)).astimezone(UTC) - timedelta(microseconds=1)
    times = fire_times(CronSchedule(expression, zone), after=start, until=end, limit=10_000)
    return [t.astimezone(tz).strftime("%H:%M %Z") for t in times]


def test_every_wall_time_a_spring_forward_skips_runs_once_after_the_jump():
    # New York, 9 March 2025: 02:00 EST becomes 03:00 EDT. (APScheduler alone drops 02:30.)
    assert local_times("0,30 2 * * *", "America/New_York", (2025, 3, 9)) == ["03:00 EDT", "03:30 EDT"]
    fixed_hours = local_times("* 0-2 * * *", "America/New_York", (2025, 3, 9))
    assert len(fixed_hours) == 180  # every wall-clock minute of 00:00-02:59 once
    assert fixed_hours[120:] == [f"03:{m:02d} EDT" for m in range(60)]


def test_a_skipped_wall_time_whose_instant_is_the_next_hours_run_still_runs_once():
    # Riga, 28 March 2021: 03:00 EET becomes 04:00 EEST. 03:30 lay 30 minutes after the jump's start,
    # so it runs at 04:30 EEST, where 04:30 runs too: it runs one second after it instead of not at all.
    riga = ZoneInfo("Europe/Riga")
    after, until = datetime(2021, 3, 28, tzinfo=riga), datetime(2021, 3, 29, tzinfo=riga)
    times = fire_times(CronSchedule("30 1,2,3,4,5 * * *", "Europe/Riga"), after=after, until=until, limit=100)
    assert [t.astimezone(riga).isoformat() for t in times] == [
        "2021-03-28T01:30:00+02:00",
        "2021-03-28T02:30:00+02:00",
        "2021-03-28T04:30:00+03:00",  # 04:30
        "2021-03-28T04:30:01+03:00",  # 03:30, which the jump skipped
        "2021-03-28T05:30:00+03:00",
    ]
    assert len(local_times("0 1-5 * * *", "Europe/Riga", (2021, 3, 28))) == 5
    every_minute = fire_times(
        CronSchedule("* 1-6 * * *", "Europe/Riga"), after=after, until=until, limit=1000
    )
    assert len(every_minute) == len(set(every_minute)) == 6 * 60


def test_a_half_hour_shift_skips_wildcard_hour_ticks_by_real_time():
    # Lord Howe Island, 5 October 2025: 02:00 becomes 02:30 (a 30-minute DST shift).
    times = local_times("*/20 * * * *", "Australia/Lord_Howe", (2025, 10, 5))
    assert {t[3:5] for t in times} == {"00", "20", "40"}  # never at an odd minute
    assert "02:40 +11" in times and len(times) == 3 * 24 - 2  # 02:00 and 02:20 never happen
    # ... and fixed-hour ticks in the gap run once each, after it.
    assert local_times("0,20,40 2 * * *", "Australia/Lord_Howe", (2025, 10, 5)) == [
        "02:30 +11",
        "02:40 +11",
        "02:50 +11",
    ]


DRIVEN = [
    ("0 * * * *", None),
    ("30 2 * * *", 1),
    ("*/20 * * * *", None),
    ("30 2 * * 0", 1),
    ("30 2,3 * * *", 2),
]
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


# --- properties (Hypothesis) ------------------------------------------------------
#
# An independent oracle: expand each crontab field into its set of values, walk every
# wall-clock minute of the window and turn the matching ones into instants the way the
# docs/jobs.md promises (fixed-hour jobs once per wall time, wildcard-hour jobs by real time;
# a wall time a spring-forward skips runs at the same offset after the jump, or a second
# after that if an existing wall time runs there).

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Sao_Paulo",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "Asia/Kolkata",
    "Pacific/Chatham",
]
# Days on which some of ZONES change their offset, plus ordinary days.
DAYS = [
    datetime(2025, 3, 30),
    datetime(2025, 10, 26),
    datetime(2025, 3, 9),
    datetime(2025, 11, 2),
    datetime(2025, 4, 6),
    datetime(2025, 10, 5),
    datetime(2025, 9, 28),
    datetime(2024, 2, 29),
    datetime(2025, 6, 15),
    datetime(2026, 12, 31),
]
FIELD_RANGES = {"minute": (0, 59), "hour": (0, 23), "day": (1, 31), "month": (1, 12), "weekday": (0, 7)}


@st.composite
def cron_field(draw: st.DrawFn, field: str) -> str:
    low, high = FIELD_RANGES[field]
    items: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["star", "step", "value", "value-step", "range", "range-step"]))
        if kind == "star":
            items.append("*")
        elif kind == "step":
            items.append(f"*/{draw(st.integers(1, high - low + 1))}")
        elif kind == "value-step":
            items.append(f"{draw(st.integers(low, high))}/{draw(st.integers(1, high - low + 1))}")
        elif kind == "value":
            items.append(str(draw(st.integers(low, high))))
        else:
            a = draw(st.integers(low, high))
            b = draw(st.integers(a, high))
            step = f"/{draw(st.integers(1, high - low + 1))}" if kind == "range-step" else ""
            items.append(f"{a}-{b}{step}")
    return ",".join(items)


def expand(field: str, text: str) -> set[int]:
    low, high = FIELD_RANGES[field]
    values: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first, last = (int(part) for part in base.split("-"))
        else:
            first = int(base)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    if field == "weekday":
        values = {v % 7 for v in values}
    return values


def oracle(expression: str, zone: str, after: datetime, until: datetime) -> list[datetime]:
    minute_f, hour_f, day_f, month_f, weekday_f = expression.split()
    minutes, hours = expand("minute", minute_f), expand("hour", hour_f)
    days, months, weekdays_ = expand("day", day_f), expand("month", month_f), expand("weekday", weekday_f)
    either = not day_f.startswith("*") and not weekday_f.startswith("*")
    by_real_time = hour_f.startswith("*")
    tz = ZoneInfo(zone)

    def matches(wall: datetime) -> bool:
        day_ok, weekday_ok = wall.day in days, (wall.weekday() + 1) % 7 in weekdays_
        return (
            wall.second == 0
            and wall.minute in minutes
            and wall.hour in hours
            and wall.month in months
            and ((day_ok or weekday_ok) if either else (day_ok and weekday_ok))
        )

    def existing_run_at(instant: datetime) -> bool:
        wall = instant.astimezone(tz).replace(tzinfo=None)
        return matches(wall) and wall.replace(tzinfo=tz, fold=0).astimezone(UTC) == instant

    wall = (after.astimezone(tz) - timedelta(hours=3)).replace(tzinfo=None, second=0, microsecond=0)
    wall_end = (until.astimezone(tz) + timedelta(hours=3)).replace(tzinfo=None)
    found: set[datetime] = set()
    while wall <= wall_end:
        if matches(wall):
            first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
            exists = first.astimezone(tz).replace(tzinfo=None) == wall
            if not by_real_time:
                # One run per wall time; a skipped one read with fold=0, a second later while
                # an existing wall time runs there.
                while not exists and existing_run_at(first):
                    first += timedelta(seconds=1)
                instants = {first}
            elif exists:
                instants = {first, wall.replace(tzinfo=tz, fold=1).astimezone(UTC)}
            else:
                instants = set()  # by real time, a wall time that never happens does not run
            found.update(instant for instant in instants if after < instant <= until)
        wall += timedelta(minutes=1)
    return sorted(found)


@st.composite
def cron_case(draw: st.DrawFn) -> tuple[str, str, datetime, datetime]:
    fields = [draw(cron_field(name)) for name in ("minute", "hour", "day", "month", "weekday")]
    # Keep day and month satisfiable often enough to see fires in a short window.
    if draw(st.booleans()):
        fields[2], fields[3] = "*", "*"
    zone = draw(st.sampled_from(ZONES))
    day = draw(st.sampled_from(DAYS))
    start = day.replace(tzinfo=ZoneInfo(zone)) + timedelta(minutes=draw(st.integers(-180, 24 * 60)))
    after = start.astimezone(UTC) + timedelta(microseconds=draw(st.integers(0, 59_999_999)))
    until = after + timedelta(hours=draw(st.integers(1, 30)))
    return " ".join(fields), zone, after, until


PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None)


@PROPERTY_SETTINGS
@given(cron_case())
def test_cron_fire_times_match_an_independent_oracle(case):
    expression, zone, after, until = case
    times = fire_times(CronSchedule(expression, zone), after=after, until=until, limit=100_000)
    assert all(a < b for a, b in itertools.pairwise(times)), "fire times must strictly increase"
    assert times == oracle(expression, zone, after, until), case


@PROPERTY_SETTINGS
@given(cron_case(), st.sampled_from([timedelta(0), timedelta(microseconds=1), timedelta(seconds=2)]))
def test_the_scheduler_loop_fires_exactly_the_fire_times(case, latency):
    expression, zone, after, until = case
    schedule = CronSchedule(expression, zone)
    fired = drive_like_apscheduler(schedule.build_trigger(), start=after, until=until, latency=latency)
    expected = fire_times(schedule, after=after - timedelta(microseconds=1), until=until, limit=100_000)
    assert fired == expected, (case, latency)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    st.integers(1, 10 * 86400),
    st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
)
def test_interval_ticks_lie_on_one_grid_whatever_now_is(seconds, now):
    trigger = IntervalSchedule(seconds).build_trigger()
    first = trigger.get_next_fire_time(None, now)
    assert first is not None
    assert (first - GRID_EPOCH) % timedelta(seconds=seconds) == timedelta(0)
    assert now <= first < now + timedelta(seconds=seconds)
    times = fire_times(
        IntervalSchedule(seconds), after=now, until=now + timedelta(seconds=seconds * 5), limit=10
    )
    assert all(b - a == timedelta(seconds=seconds) for a, b in itertools.pairwise(times))
    assert len(times) == 5


ZONE_DAYS = [("Europe/Berlin", (2025, 3, 30), 23), ("Europe/Berlin", (2025, 10, 26), 25)]
ZONE_DAYS += [("America/New_York", (2025, 3, 9), 23), ("America/New_York", (2025, 11, 2), 25)]


@pytest.mark.parametrize(("zone", "day", "real_hours"), ZONE_DAYS)
@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(minute=st.integers(0, 59), hour=st.integers(0, 23))
def test_daily_runs_once_and_hourly_once_per_real_hour_on_dst_days(zone, day, real_hours, minute, hour):
    tz = ZoneInfo(zone)
    start = datetime(*day, tzinfo=tz).astimezone(UTC) - timedelta(microseconds=1)
    end = (datetime(*day, tzinfo=tz) + timedelta(days=1)).astimezone(UTC) - timedelta(microseconds=1)
    daily = fire_times(CronSchedule(f"{minute} {hour} * * *", zone), after=start, until=end, limit=10)
    assert len(daily) == 1, daily
    hourly = fire_times(CronSchedule(f"{minute} * * * *", zone), after=start, until=end, limit=100)
    assert len(hourly) == real_hours
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(hourly))


SPRING_AND_FALL = [
    ("Europe/Riga", (2021, 3, 28)),
    ("Europe/Riga", (2021, 10, 31)),
    ("America/New_York", (2025, 3, 9)),
    ("Australia/Lord_Howe", (2025, 10, 5)),  # 30-minute shifts
    ("Australia/Lord_Howe", (2025, 4, 6)),
]


@pytest.mark.parametrize(("zone", "day"), SPRING_AND_FALL)
@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    minutes=st.sets(st.integers(0, 59), min_size=1, max_size=6),
    hours=st.sets(st.integers(0, 5), min_size=1, max_size=4),
)
def test_a_fixed_hour_line_runs_once_per_matching_wall_time_on_dst_days(zone, day, minutes, hours):
    # Hours 0-5 hold every shift of these zones, and the hour after each gap, where a skipped
    # wall time's instant may already be a run.
    expression = f"{','.join(map(str, sorted(minutes)))} {','.join(map(str, sorted(hours)))} * * *"
    tz = ZoneInfo(zone)
    start = datetime(*day, tzinfo=tz).astimezone(UTC) - timedelta(microseconds=1)
    end = (datetime(*day, tzinfo=tz) + timedelta(days=1)).astimezone(UTC) - timedelta(microseconds=1)
    times = fire_times(CronSchedule(expression, zone), after=start, until=end, limit=1000)
    assert len(times) == len(set(times)) == len(minutes) * len(hours), expression


# Crontab pieces, valid and not, including non-ASCII digits and steps with nothing after the slash.
CRON_TOKENS = ["*", "*/0", "1-", "-1", "5", "60", "7", "8", "sun", "x", ",", "/", "1-3/2", "1/3", "2/"]
CRON_TOKENS += ["¹", "٣", "jan-aug/2", "mon-2/", "last"]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.lists(
            st.sampled_from(CRON_TOKENS),
            max_size=7,
        ).map(" ".join),
    ),
    st.one_of(
        st.none(),
        st.text(max_size=30),
        st.sampled_from(["UTC", "Europe/Berlin", "../etc", "/etc/localtime", ""]),
    ),
)
def test_any_cron_string_and_zone_is_a_schedule_or_a_clear_error(expression, zone):
    try:
        schedule = parse_schedule(cron=expression, timezone=zone)
    except InvalidSchedule as exc:
        assert str(exc)
        assert "\n" not in str(exc)
        return
    assert schedule.key.startswith("cron:")
    schedule.describe()
    fire_times(schedule, after=SUNDAY, until=SUNDAY + timedelta(days=2), limit=5)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(interval=JSON, cron=JSON, timezone=JSON)
def test_any_json_schedule_fields_are_a_schedule_or_a_clear_error(interval, cron, timezone):
    try:
        parse_schedule(interval=interval, cron=cron, timezone=timezone)
    except InvalidSchedule as exc:
        assert str(exc) and "\n" not in str(exc)

"""Crontab lines against the published test vectors of two cron libraries, where their rules are ours.

The vectors come from the test suites shipped in the source distributions of
cronsim 2.6 (``tests/test_cronsim.py``: ``TestDstTransitions``, ``TestIterator``,
``TestValidation``) and croniter 7.0.0 (``src/croniter/tests/test_croniter.py``:
the ``test_timezone_*``, ``test_std_dst*``, ``test_dst_*`` cases), copied as
they are. Left out are the vectors that test their extensions (``L``, ``W``,
``#``, seconds, hashes) and those where Stayy's documented rule differs:

* a wall time a spring-forward skips: both run it at the jump (cronsim:
  ``15 3 * * *`` in Riga runs at 04:00; croniter: ``1 2 * * *`` in Paris at
  03:00), and both then lose a second skipped time or the next hour's run
  (cronsim's own ``0 1-5 * * *`` vector has four runs for five wall times);
  Stayy runs it as long after the jump as it lay after its start, once;
* a fixed-hour line on a fall-back: croniter runs ``0 1 * * *`` in Dublin
  twice; Stayy once;
* a line with a ``*`` minute and a fixed hour (``* 1-6 * * *``): cronsim
  runs it by real time, as cron(8) does; Stayy once per wall time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import product
from zoneinfo import ZoneInfo

import pytest

from stayy.scheduling.triggers import CronSchedule, InvalidSchedule, fire_times

RIGA = "Europe/Riga"  # cronsim: 2021-03-28 03:00 EET -> 04:00 EEST; 2021-10-31 04:00 EEST -> 03:00 EET

# (source, expression, zone, start as local wall time, the next fire times as local ISO times)
DST_VECTORS = [
    (
        "cronsim 001 mar",
        "0 * * * *",
        RIGA,
        "2021-03-28T01:30",
        ["2021-03-28T02:00:00+02:00", "2021-03-28T04:00:00+03:00"],
    ),
    (
        "cronsim 001 oct",
        "0 * * * *",
        RIGA,
        "2021-10-31T01:30",
        [
            "2021-10-31T02:00:00+03:00",
            "2021-10-31T03:00:00+03:00",
            "2021-10-31T03:00:00+02:00",
            "2021-10-31T04:00:00+02:00",
        ],
    ),
    (
        "cronsim 002 mar",
        "*/30 * * * *",
        RIGA,
        "2021-03-28T02:10",
        ["2021-03-28T02:30:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-28T04:30:00+03:00"],
    ),
    (
        "cronsim 002 oct",
        "*/30 * * * *",
        RIGA,
        "2021-10-31T02:10",
        [
            "2021-10-31T02:30:00+03:00",
            "2021-10-31T03:00:00+03:00",
            "2021-10-31T03:30:00+03:00",
            "2021-10-31T03:00:00+02:00",
            "2021-10-31T03:30:00+02:00",
            "2021-10-31T04:00:00+02:00",
        ],
    ),
    (
        "cronsim 003 mar",
        "*/15 * * * *",
        RIGA,
        "2021-03-28T02:40",
        ["2021-03-28T02:45:00+02:00", "2021-03-28T04:00:00+03:00"],
    ),
    (
        "cronsim 004 mar",
        "0 */2 * * *",
        RIGA,
        "2021-03-28T01:30",
        ["2021-03-28T02:00:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-28T06:00:00+03:00"],
    ),
    (
        "cronsim 004 oct",
        "0 */2 * * *",
        RIGA,
        "2021-10-31T01:30",
        ["2021-10-31T02:00:00+03:00", "2021-10-31T04:00:00+02:00", "2021-10-31T06:00:00+02:00"],
    ),
    (
        "cronsim 005 mar",
        "30 */2 * * *",
        RIGA,
        "2021-03-28T01:30",
        ["2021-03-28T02:30:00+02:00", "2021-03-28T04:30:00+03:00"],
    ),
    (
        "cronsim 005 oct",
        "30 */2 * * *",
        RIGA,
        "2021-10-31T01:30",
        ["2021-10-31T02:30:00+03:00", "2021-10-31T04:30:00+02:00"],
    ),
    (
        "cronsim 006 oct",
        "0 */3 * * *",
        RIGA,
        "2021-10-31T01:30",
        ["2021-10-31T03:00:00+03:00", "2021-10-31T03:00:00+02:00", "2021-10-31T06:00:00+02:00"],
    ),
    (
        "cronsim 008 oct",
        "0 1,2,3,4,5 * * *",
        RIGA,
        "2021-10-31T01:30",
        ["2021-10-31T02:00:00+03:00", "2021-10-31T03:00:00+03:00", "2021-10-31T04:00:00+02:00"],
    ),
    (
        "cronsim 009 oct",
        "30 1,2,3,4,5 * * *",
        RIGA,
        "2021-10-31T01:30",
        ["2021-10-31T02:30:00+03:00", "2021-10-31T03:30:00+03:00", "2021-10-31T04:30:00+02:00"],
    ),
    (
        "cronsim 010 mar",
        "0 2 * * *",
        RIGA,
        "2021-03-28T01:30",
        ["2021-03-28T02:00:00+02:00", "2021-03-29T02:00:00+03:00"],
    ),
    (
        "cronsim 010 oct",
        "0 2 * * *",
        RIGA,
        "2021-10-31T01:30",
        ["2021-10-31T02:00:00+03:00", "2021-11-01T02:00:00+02:00"],
    ),
    (
        "cronsim 011 mar",
        "0 3 * * *",
        RIGA,
        "2021-03-27T01:30",
        ["2021-03-27T03:00:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-29T03:00:00+03:00"],
    ),
    (
        "cronsim 011 oct",
        "0 3 * * *",
        RIGA,
        "2021-10-31T01:30",
        ["2021-10-31T03:00:00+03:00", "2021-11-01T03:00:00+02:00"],
    ),
    (
        "cronsim 012 mar",
        "0 4 * * *",
        RIGA,
        "2021-03-27T01:30",
        ["2021-03-27T04:00:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-29T04:00:00+03:00"],
    ),
    (
        "cronsim 012 oct",
        "0 4 * * *",
        RIGA,
        "2021-10-30T01:30",
        ["2021-10-30T04:00:00+03:00", "2021-10-31T04:00:00+02:00", "2021-11-01T04:00:00+02:00"],
    ),
    (
        "cronsim 014 oct",
        "0 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23 * * *",
        RIGA,
        "2021-10-31T01:30",
        ["2021-10-31T02:00:00+03:00", "2021-10-31T03:00:00+03:00", "2021-10-31T04:00:00+02:00"],
    ),
    (
        "cronsim 015 mar",
        "0 1,3,5,7,9,11,13,15,17,19,21,23 * * *",
        RIGA,
        "2021-03-28T00:30",
        ["2021-03-28T01:00:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-28T05:00:00+03:00"],
    ),
    (
        "cronsim 015 oct",
        "0 1,3,5,7,9,11,13,15,17,19,21,23 * * *",
        RIGA,
        "2021-10-31T00:30",
        ["2021-10-31T01:00:00+03:00", "2021-10-31T03:00:00+03:00", "2021-10-31T05:00:00+02:00"],
    ),
    (
        "cronsim 016 oct",
        "0 1-5 * * *",
        RIGA,
        "2021-10-31T01:30",
        ["2021-10-31T02:00:00+03:00", "2021-10-31T03:00:00+03:00", "2021-10-31T04:00:00+02:00"],
    ),
    (
        "cronsim at_3_15 oct",
        "15 3 * * *",
        RIGA,
        "2021-10-30T00:00",
        ["2021-10-30T03:15:00+03:00", "2021-10-31T03:15:00+03:00", "2021-11-01T03:15:00+02:00"],
    ),
    (
        "cronsim every_minute mar",
        "* * * * *",
        RIGA,
        "2021-03-28T02:58",
        ["2021-03-28T02:59:00+02:00", "2021-03-28T04:00:00+03:00"],
    ),
    (
        "cronsim every_minute oct",
        "* * * * *",
        RIGA,
        "2021-10-31T03:58",
        ["2021-10-31T03:59:00+03:00", "2021-10-31T03:00:00+02:00", "2021-10-31T03:01:00+02:00"],
    ),
    (
        "croniter timezone_winter_time",
        "*/30 * * * *",
        "Europe/Athens",
        "2013-10-27T02:00",
        [
            "2013-10-27T02:30:00+03:00",
            "2013-10-27T03:00:00+03:00",
            "2013-10-27T03:30:00+03:00",
            "2013-10-27T03:00:00+02:00",
            "2013-10-27T03:30:00+02:00",
            "2013-10-27T04:00:00+02:00",
            "2013-10-27T04:30:00+02:00",
        ],
    ),
    (
        "croniter timezone_summer_time",
        "*/30 * * * *",
        "Europe/Athens",
        "2013-03-31T01:00",
        [
            "2013-03-31T01:30:00+02:00",
            "2013-03-31T02:00:00+02:00",
            "2013-03-31T02:30:00+02:00",
            "2013-03-31T04:00:00+03:00",
            "2013-03-31T04:30:00+03:00",
        ],
    ),
    (
        "croniter std_dst daily mar",
        "0 0 * * *",
        "Europe/Warsaw",
        "2017-03-26T00:00",
        ["2017-03-27T00:00:00+02:00"],
    ),
    (
        "croniter std_dst hourly mar",
        "0 * * * *",
        "Europe/Warsaw",
        "2017-03-26T01:00",
        ["2017-03-26T03:00:00+02:00"],
    ),
    (
        "croniter std_dst daily oct",
        "0 0 * * *",
        "Europe/Warsaw",
        "2017-10-29T00:00",
        ["2017-10-30T00:00:00+01:00"],
    ),
    (
        "croniter std_dst hourly oct",
        "0 * * * *",
        "Europe/Warsaw",
        "2017-10-29T01:59",
        [
            "2017-10-29T02:00:00+02:00",
            "2017-10-29T02:00:00+01:00",
            "2017-10-29T03:00:00+01:00",
            "2017-10-29T04:00:00+01:00",
        ],
    ),
    (
        "croniter std_dst2 21:00",
        "0 0 * * *",
        "America/Sao_Paulo",
        "2018-02-17T21:00",
        ["2018-02-18T00:00:00-03:00"],
    ),
    (
        "croniter std_dst2 23:05",
        "0 0 * * *",
        "America/Sao_Paulo",
        "2018-02-17T23:05",
        ["2018-02-18T00:00:00-03:00"],
    ),
    (
        "croniter std_dst2 00:05",
        "0 0 * * *",
        "America/Sao_Paulo",
        "2018-02-18T00:05",
        ["2018-02-19T00:00:00-03:00"],
    ),
    (
        "croniter std_dst3",
        "0 0 24 * *",
        "Australia/Adelaide",
        "2020-04-15T00:00",
        ["2020-04-24T00:00:00+09:30"],
    ),
    (
        "croniter dst_daily",
        "7 0 * * *",
        "Europe/London",
        "2025-03-30T00:00",
        ["2025-03-30T00:07:00+00:00", "2025-03-31T00:07:00+01:00", "2025-04-01T00:07:00+01:00"],
    ),
    (
        "croniter dst_hourly",
        "7 * * * *",
        "Europe/London",
        "2025-03-30T00:00",
        ["2025-03-30T00:07:00+00:00", "2025-03-30T02:07:00+01:00", "2025-03-30T03:07:00+01:00"],
    ),
    (
        "croniter dst_iter",
        "0 0 * * *",
        "Asia/Hebron",
        "2022-03-25T00:00",
        ["2022-03-26T00:00:00+02:00", "2022-03-27T01:00:00+03:00", "2022-03-28T00:00:00+03:00"],
    ),
    (
        "croniter dst_gap_shift_is_not_a_fire_time",
        "0 * * * *",
        "Australia/Lord_Howe",
        "2019-10-06T00:00",
        [
            "2019-10-06T01:00:00+10:30",
            "2019-10-06T03:00:00+11:00",
            "2019-10-06T04:00:00+11:00",
            "2019-10-06T05:00:00+11:00",
        ],
    ),
]


@pytest.mark.parametrize(
    ("expression", "zone", "start", "expected"), [v[1:] for v in DST_VECTORS], ids=[v[0] for v in DST_VECTORS]
)
def test_published_dst_vectors(expression, zone, start, expected):
    tz = ZoneInfo(zone)
    after = datetime.fromisoformat(start).replace(tzinfo=tz)
    until = datetime.fromisoformat(expected[-1])
    times = fire_times(CronSchedule(expression, zone), after=after, until=until, limit=100)
    assert [t.astimezone(tz).isoformat() for t in times] == expected


# cronsim TestIterator (NOW = 2020-01-01 00:00): Vixie's day rule and weekday steps.
ITERATOR_VECTORS = [
    (
        "dow_star: first Sunday of the month",
        "1 1 1-7 * */7",
        ["2020-01-05", "2020-02-02", "2020-03-01", "2020-04-05"],
    ),
    (
        "dom_star: first Monday of the month",
        "1 1 */100,1-7 * MON",
        ["2020-01-06", "2020-02-03", "2020-03-02", "2020-04-06"],
    ),
    (
        "every_x_weekdays: from Sunday",
        "1 1 * * */3",
        ["2020-01-01", "2020-01-04", "2020-01-05", "2020-01-08"],
    ),
]


@pytest.mark.parametrize(
    ("expression", "days"), [v[1:] for v in ITERATOR_VECTORS], ids=[v[0] for v in ITERATOR_VECTORS]
)
def test_published_day_vectors(expression, days):
    after = datetime.fromisoformat("2020-01-01T00:00+00:00")
    times = fire_times(CronSchedule(expression), after=after, until=after + timedelta(days=120), limit=100)
    assert [t.date().isoformat() for t in times[: len(days)]] == days
    assert all((t.hour, t.minute) == (1, 1) for t in times)


# cronsim TestValidation.test_it_rejects_bad_values: every pattern with every bad value
# (its six-field pattern left out, and "ABC", a name in no field, kept).
BAD_PATTERNS = [
    "%s * * * *",
    "* %s * * *",
    "* * %s * *",
    "* * * %s * ",
    "* * * * %s",
    "1-%s * * * *",
    "%s-60 * * * *",
    "* * 1-%s * *",
    "* * 1,%s * *",
    "* * %s/1 * *",
    "* * * %s-DEC *",
    "* * * JAN-%s *",
    "* * * * %s-SUN",
    "* * * * MON-%s",
]
BAD_VALUES = ["-1", "61", "ABC", "2/", "/2", "2#", "#2", "1##1", "1//2", "¹", "LL", "LWX"]
# ... and its other rejections.
BAD_LINES = [
    "* * * *",  # 4 components
    "* * 5-1 * *",  # lopsided range
    "1-1_0 * * * *",  # underscores
    "*/0 * * * *",  # zero step
    "* * 30 2 *",  # day-of-month range
    "* * 31 4 *",
]


@pytest.mark.parametrize(
    "expression", [pattern % value for pattern, value in product(BAD_PATTERNS, BAD_VALUES)] + BAD_LINES
)
def test_published_bad_lines_are_rejected_with_a_clear_error(expression):
    with pytest.raises(InvalidSchedule) as info:
        CronSchedule(expression)
    assert str(info.value) and "\n" not in str(info.value)

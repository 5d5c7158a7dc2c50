"""Schedules in words: the catalog's trigger keys as the dashboard shows them."""

from __future__ import annotations

import pytest

from stayy.admin.schedule_words import schedule_in_words
from stayy.scheduling.triggers import CronSchedule, parse_schedule


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("interval:1", "every second"),
        ("interval:30", "every 30 seconds"),
        ("interval:60", "every minute"),
        ("interval:300", "every 5 minutes"),
        ("interval:7200", "every 2 hours"),
        ("interval:86400", "every day"),
        ("cron:0 3 * * *@Europe/Berlin", "daily at 03:00 Europe/Berlin"),
        ("cron:17 3 * * *@UTC", "daily at 03:17 UTC"),
        ("cron:0 3 * * 0@UTC", "at 03:00, only on Sunday (UTC)"),
        ("cron:30 2 * * 7@Europe/Berlin", "at 02:30, only on Sunday (Europe/Berlin)"),
        (
            "cron:*/15 9-17 * * 1-5@America/New_York",
            "every 15 minutes, between 09:00 and 17:59, Monday through Friday (America/New_York)",
        ),
        ("cron:0 0 1 * *@UTC", "at 00:00, on day 1 of the month (UTC)"),
        ("cron:5 * * * *@UTC", "at 5 minutes past the hour (UTC)"),
    ],
)
def test_schedule_in_words(key, words):
    assert schedule_in_words(key) == words


def test_the_catalogs_own_keys_are_described():
    """The keys the catalog stores come from the schedules; every kind reads back in words."""
    for schedule in (
        parse_schedule(interval=45),
        parse_schedule(cron="0 4 * * 1-5", timezone="Asia/Tokyo"),
        parse_schedule(cron="0 3 * * *", timezone="Europe/Berlin"),
    ):
        words = schedule_in_words(schedule.key)
        assert words and words != schedule.key and "cron '" not in words


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("cron:61 3 * * *@UTC", "cron '61 3 * * *' UTC"),  # no minute 61
        ("cron:0 25 * * 1@UTC", "cron '0 25 * * 1' UTC"),  # cron-descriptor would say "at 25:00"
        ("cron:0 3 * * 9@UTC", "cron '0 3 * * 9' UTC"),
        ("cron:0 3 * * *@Mars/Olympus", "cron '0 3 * * *' Mars/Olympus"),
        ("cron:1 2 3@UTC", "cron '1 2 3' UTC"),  # not five fields
        ("interval:abc", "interval:abc"),
        ("interval:0", "interval:0"),
        ("weekly", "weekly"),
        ("", ""),
    ],
)
def test_unreadable_schedules_fall_back_to_the_expression(key, words):
    assert schedule_in_words(key) == words


def test_cron_without_a_zone_is_utc():
    assert schedule_in_words("cron:0 6 * * *") == "daily at 06:00 UTC"
    assert CronSchedule("0 6 * * *").describe() == "daily at 06:00 UTC"


def test_the_dashboard_says_what_the_catalog_says():
    """One phrasing: the dashboard reads the catalog's key back into the schedule that said it."""
    for schedule in (
        parse_schedule(interval=90),
        parse_schedule(cron="*/15 9-17 * * 1-5", timezone="America/New_York"),
        parse_schedule(cron="0 0 1 Jan-Aug/2 *"),
    ):
        assert schedule_in_words(schedule.key) == schedule.describe()


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        # The words follow how Stayy reads the line, not how cron-descriptor would read its text.
        ("0 0 1 Jan-Aug/2 *", "at 00:00, on day 1 of the month, every 2 months, January through July (UTC)"),
        ("50/30 * * * *", "at 50 minutes past the hour (UTC)"),  # a step longer than its range
        ("0 12 * * 5/1", "at 12:00, Friday through Sunday (UTC)"),  # 5/1 runs to 7, Sunday
        ("0 0 1-31 * 5", "daily at 00:00 UTC"),  # either day field matching every day: every day
        ("0 0 */2 * 5", "cron '0 0 */2 * 5' (UTC)"),  # both must match, which cron-descriptor cannot say
    ],
)
def test_words_follow_how_the_line_is_read(expression, words):
    assert CronSchedule(expression).describe() == words

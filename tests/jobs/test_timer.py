"""The leader's timer: due ticks handed on once, missed ones with them, and a lapsed term ended."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from stayy.scheduling.timer import MAX_WAIT, TickTimer
from stayy.scheduling.triggers import parse_schedule
from tests.support import wait_until

START = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand: the timer takes its clock as a callable."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def test_a_due_tick_is_handed_on_once_with_the_ticks_it_passed_as_missed():
    clock, fired = Clock(), []
    timer = TickTimer(clock=clock, on_due=lambda name, tick, missed: fired.append((name, tick, missed)))
    timer.add("every_second", parse_schedule(interval=1), paused=False, now=clock())

    assert timer.fire_due() <= MAX_WAIT and fired == []
    clock.now = START + timedelta(seconds=3.5)
    timer.fire_due()
    timer.fire_due()

    ticks = [START + timedelta(seconds=n) for n in (1, 2, 3)]
    assert fired == [("every_second", ticks[-1], ticks[:-1])]
    assert timer.next_run_times() == {"every_second": START + timedelta(seconds=4)}


def test_a_paused_job_fires_nothing_and_resumed_starts_from_the_next_fire_time():
    clock, fired = Clock(), []
    timer = TickTimer(clock=clock, on_due=lambda name, tick, missed: fired.append(tick))
    timer.add("job", parse_schedule(interval=1), paused=True, now=clock())
    clock.now = START + timedelta(seconds=5)
    timer.fire_due()
    assert fired == [] and timer.next_run_times() == {"job": None}

    assert timer.set_paused("job", False)
    clock.now = START + timedelta(seconds=6)
    timer.fire_due()
    assert fired == [START + timedelta(seconds=6)]


def test_a_term_that_no_longer_holds_ends_in_the_timer_within_its_longest_wait():
    """The leader's loop may be stuck in a call to a database it cannot reach: the timer still wakes
    at least every MAX_WAIT, finds the term over, ends it and fires nothing more."""
    holds = threading.Event()
    holds.set()
    lapsed = threading.Event()
    fired: list[datetime] = []
    timer = TickTimer(
        clock=lambda: datetime.now(UTC),
        on_due=lambda name, tick, missed: fired.append(tick),
        holds=holds.is_set,
        on_lapse=lapsed.set,
    )
    timer.add("hourly", parse_schedule(interval=3600), paused=False, now=datetime.now(UTC))
    timer.start()
    time.sleep(0.2)
    assert not lapsed.is_set()

    holds.clear()
    started = time.monotonic()
    wait_until(lapsed.is_set, timeout=MAX_WAIT + 2, message="the timer did not notice the lapsed term")
    assert time.monotonic() - started <= MAX_WAIT + 2
    assert fired == []

"""The leader's timer: waits for each job's next tick on the cluster's clock and hands it on.

APScheduler's triggers compute the fire times (the interval grid, the DST-safe
crontab); this loop only waits for the earliest one, in one thread, and calls
``on_due(name, tick, missed)`` for each job that is due: ``tick`` is the
newest due fire time, ``missed`` the older ones it passed while it could not
run (the process was stopped, or the loop late), oldest first. The clock is
a callable, so the leader can give the database's time instead of the host's.
A job with a ``delay`` (its jitter) is due that much after each fire time.

The timer lives as long as one leadership term and asks ``holds()`` each time
it wakes (at least every second): a term whose lease ran out ends here, with
``on_lapse()``, even while the leader's loop is stuck in a call to a database
it cannot reach.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.triggers.base import BaseTrigger

from stayy.scheduling.triggers import Schedule

logger = logging.getLogger("stayy.jobs")

OnDue = Callable[[str, datetime, list[datetime]], None]
Delay = Callable[[datetime], timedelta]
#: The loop wakes at least this often (seconds), so a changed clock offset takes effect.
MAX_WAIT = 1.0
#: At most this many missed fire times of one job are handed on at once (the newest kept).
MAX_MISSED = 10_000


def _no_delay(_tick: datetime) -> timedelta:
    return timedelta(0)


@dataclass
class _Entry:
    trigger: BaseTrigger
    next_at: datetime | None
    paused: bool
    delay: Delay

    def due_at(self) -> datetime | None:
        return None if self.next_at is None else self.next_at + self.delay(self.next_at)


class TickTimer:
    """Fires the ticks of the jobs it holds until :meth:`stop`; :meth:`start` runs it in a thread."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        on_due: OnDue,
        holds: Callable[[], bool] = lambda: True,
        on_lapse: Callable[[], None] = lambda: None,
        name: str = "stayy-timer",
    ) -> None:
        self._clock = clock
        self._on_due = on_due
        self._holds = holds
        self._on_lapse = on_lapse
        self._name = name
        self._jobs: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def add(
        self, name: str, schedule: Schedule, *, paused: bool, now: datetime, delay: Delay = _no_delay
    ) -> None:
        """Schedule ``name``: its first tick is the first fire time after ``now``, due ``delay(tick)``
        after it."""
        trigger = schedule.build_trigger()
        with self._lock:
            self._jobs[name] = _Entry(trigger, None if paused else _next_after(trigger, now), paused, delay)
        self._wake.set()

    def remove(self, name: str) -> None:
        """Stop scheduling ``name`` (a tick already handed on is not recalled)."""
        with self._lock:
            self._jobs.pop(name, None)
        self._wake.set()

    def is_paused(self, name: str) -> bool:
        with self._lock:
            entry = self._jobs.get(name)
            return entry is not None and entry.paused

    def set_paused(self, name: str, paused: bool) -> bool:
        """Pause or resume ``name`` (resumed, it ticks from the next fire time); ``True`` if it changed."""
        with self._lock:
            entry = self._jobs.get(name)
            if entry is None or entry.paused == paused:
                return False
            entry.paused = paused
            entry.next_at = None if paused else _next_after(entry.trigger, self._clock())
        self._wake.set()
        return True

    def next_run_times(self) -> dict[str, datetime | None]:
        with self._lock:
            return {name: entry.next_at for name, entry in self._jobs.items()}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop firing; a tick already handed on is not recalled."""
        self._stopped.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.clear()  # before looking: a change made meanwhile wakes the wait below
            if not self._holds():
                self._stopped.set()
                self._on_lapse()
                return
            try:
                wait = self.fire_due()
            except Exception:
                logger.exception("tick timer error")
                wait = MAX_WAIT
            self._wake.wait(wait)

    def fire_due(self) -> float:
        """Hand on every due tick now; returns the seconds until the next one (at most ``MAX_WAIT``)."""
        now = self._clock()
        due: list[tuple[str, list[datetime]]] = []
        with self._lock:
            for name, entry in self._jobs.items():
                due_at = entry.due_at()
                if due_at is None or due_at > now:
                    continue
                times: list[datetime] = []
                at: datetime | None = entry.next_at
                while at is not None and at + entry.delay(at) <= now:
                    times.append(at)
                    if len(times) > MAX_MISSED:
                        times.pop(0)
                    at = entry.trigger.get_next_fire_time(at, now)
                entry.next_at = at
                due.append((name, times))
            due_times = [entry.due_at() for entry in self._jobs.values()]
        upcoming = [due_at for due_at in due_times if due_at is not None]
        for name, times in due:
            if self._stopped.is_set():
                break
            self._on_due(name, times[-1], times[:-1])
        if not upcoming:
            return MAX_WAIT
        return max(0.0, min(MAX_WAIT, (min(upcoming) - self._clock()).total_seconds()))


def _next_after(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The trigger's first fire time strictly after ``now``."""
    at = trigger.get_next_fire_time(None, now)
    while at is not None and at <= now:
        at = trigger.get_next_fire_time(at, now)
    return at

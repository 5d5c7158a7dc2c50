"""Run deadlines (``stayy.scheduling.deadlines``): one waiting thread, each passed deadline in a thread
of its own, cancelled ones never called."""

from __future__ import annotations

import threading
import time

from stayy.scheduling.deadlines import Deadlines
from tests.support import wait_until


def test_deadlines_fire_in_their_order_each_in_its_own_named_thread():
    deadlines = Deadlines()
    fired: list[tuple[str, str, float]] = []
    started = time.monotonic()

    def record(label: str):
        return lambda: fired.append((label, threading.current_thread().name, time.monotonic() - started))

    deadlines.call_after(0.6, record("late"), name="deadline-late")
    deadlines.call_after(0.2, record("early"), name="deadline-early")  # moves the wait forward
    wait_until(lambda: len(fired) == 2, timeout=10)
    assert [(label, name) for label, name, _ in fired] == [
        ("early", "deadline-early"),
        ("late", "deadline-late"),
    ]
    assert fired[0][2] >= 0.2 and fired[1][2] >= 0.6
    assert deadlines.pending() == 0


def test_a_cancelled_deadline_is_never_called():
    deadlines = Deadlines()
    fired: list[str] = []
    cancelled = deadlines.call_after(0.2, lambda: fired.append("cancelled"), name="deadline-cancelled")
    deadlines.call_after(0.4, lambda: fired.append("kept"), name="deadline-kept")
    cancelled.cancel()
    assert deadlines.pending() == 1
    wait_until(lambda: fired, timeout=10)
    time.sleep(0.3)
    assert fired == ["kept"]


def test_a_slow_callback_does_not_delay_the_next_deadline():
    deadlines = Deadlines()
    release = threading.Event()
    fired = threading.Event()
    deadlines.call_after(0.1, lambda: release.wait(30), name="deadline-slow")
    deadlines.call_after(0.2, fired.set, name="deadline-next")
    try:
        assert fired.wait(10), "the second deadline waited for the first one's callback"
    finally:
        release.set()


def test_one_waiting_thread_however_many_deadlines():
    deadlines = Deadlines()
    before = set(threading.enumerate())
    handles = [deadlines.call_after(60, lambda: None, name=f"deadline-{n}") for n in range(50)]
    waiting = [thread for thread in threading.enumerate() if thread not in before]
    assert [thread.name for thread in waiting] == ["stayy-deadlines"]
    for handle in handles:
        handle.cancel()
    assert deadlines.pending() == 0

"""Run deadlines: one thread per process waits for all of them.

A ``threading.Timer`` per run would start a thread on the path between a
tick's claim and its handler, and ``Thread.start()`` waits until the new
thread runs. Here one daemon thread keeps the deadlines in a heap; a deadline
that passes starts a thread of its own for its callback (a timeout is rare,
and its callback may wait on the database), so one slow callback never delays
another deadline. The thread starts on first use (again in a forked child).
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable


class Deadline:
    """A scheduled callback; :meth:`cancel` stops it unless it already started."""

    __slots__ = ("at", "callback", "cancelled", "name")

    def __init__(self, at: float, callback: Callable[[], None], name: str) -> None:
        self.at, self.callback, self.name = at, callback, name
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Deadlines:
    """The deadlines of this process (use the module's :data:`deadlines`)."""

    def __init__(self) -> None:
        self._reset()
        # A forked child has neither the parent's waiting thread nor its runs.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._started = False

    def call_after(self, seconds: float, callback: Callable[[], None], *, name: str) -> Deadline:
        """Run ``callback()`` in a new thread called ``name`` once ``seconds`` have passed."""
        deadline = Deadline(time.monotonic() + seconds, callback, name)
        with self._lock:
            if not self._started:
                self._started = True
                threading.Thread(target=self._wait, name="stayy-deadlines", daemon=True).start()
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._heap[0][2] is deadline:
                self._changed.notify()
        return deadline

    def pending(self) -> int:
        """Deadlines neither passed nor cancelled."""
        with self._lock:
            return sum(1 for _, _, deadline in self._heap if not deadline.cancelled)

    def _wait(self) -> None:
        with self._lock:
            while True:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._changed.wait()
                    continue
                left = self._heap[0][0] - time.monotonic()
                if left > 0:
                    self._changed.wait(left)
                    continue
                _, _, deadline = heapq.heappop(self._heap)
                threading.Thread(target=deadline.callback, name=deadline.name, daemon=True).start()


deadlines = Deadlines()

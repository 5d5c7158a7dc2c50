"""How the users domain's long loops share their process with the requests it serves.

The domain never imports the web runtime: whoever starts a long piece of work
(a job handler, a command) hands it a ``give_way()`` callable, which waits
while the process serves a request (:func:`stayy.runtime.activity.give_way` in
a web worker). The loops call it between small batches of items
(:func:`giving_way`); the default, :func:`never`, returns at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

#: Waits, without holding the interpreter, while the process serves a request; the result is unused.
GiveWay = Callable[[], object]

#: Items between two calls of ``give_way()``: well under a millisecond of work.
GIVE_WAY_EVERY = 50


def never() -> None:
    """The ``give_way()`` of a process that serves no request."""


def giving_way(items: Iterable[T], give_way: GiveWay, *, every: int = GIVE_WAY_EVERY) -> Iterator[T]:
    """The items, with a ``give_way()`` after every ``every`` of them."""
    for number, item in enumerate(items, 1):
        yield item
        if number % every == 0:
            give_way()


class TimedGiveWay:
    """The caller's ``give_way()``, with the time each thread spent in it (left out of a page's cost)."""

    def __init__(self, give_way: GiveWay) -> None:
        self._give_way = give_way
        self._thread = threading.local()

    def __call__(self) -> None:
        started = time.monotonic()
        self._give_way()
        self._thread.waited = self.waited() + time.monotonic() - started

    def waited(self) -> float:
        """Seconds this thread has spent in ``give_way()`` so far."""
        waited: float = getattr(self._thread, "waited", 0.0)
        return waited

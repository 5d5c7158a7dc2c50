"""The requests this process is serving, so that background work in it can give way to them.

Python runs one thread of a process at a time (the GIL). A job's pure-Python
loop in a web worker therefore delays every request that worker serves: a
request thread that needs the interpreter back after each database round trip
waits up to the switch interval (5 ms) each time. The middleware
(:class:`stayy.runtime.middleware.RequestActivityMiddleware`) counts the
requests in flight; background loops call :func:`give_way` between small
batches (:func:`giving_way` does it every ``GIVE_WAY_EVERY`` items), which
waits without the GIL until this process serves no request, at most
``MAX_WAIT`` seconds a call, so that a saturated worker still lets the job
move on.

In a process that serves no HTTP (``runjobs``, the shell, a standalone job
server) nothing is ever in flight and a call costs one comparison. A request
thread never waits on requests (its own would never end).
:func:`serves_requests` tells whether this process serves HTTP at all (the
middleware was loaded by a request handler), for work that paces itself only
where requests could be waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

#: Items between two calls of :func:`give_way` in :func:`giving_way`: well under a millisecond of work.
GIVE_WAY_EVERY = 50
#: The longest one call waits for the requests in flight to end.
MAX_WAIT = 0.02

_changed = threading.Condition()
_in_flight = 0
_thread = threading.local()
_serving = False


def handler_loaded() -> None:
    """A request handler with the middleware was built in this process: it serves HTTP from now on."""
    global _serving
    _serving = True


def serves_requests() -> bool:
    """Whether this process serves HTTP requests (a web worker, ``runserver``; not ``runjobs``)."""
    return _serving


def request_started() -> None:
    global _in_flight
    _thread.serving = True
    with _changed:
        _in_flight += 1


def request_finished() -> None:
    global _in_flight
    _thread.serving = False
    with _changed:
        _in_flight -= 1
        if not _in_flight:
            _changed.notify_all()


def requests_in_flight() -> int:
    """Requests this process is serving now."""
    return _in_flight


def give_way(max_wait: float | None = None) -> bool:
    """Wait until this process serves no request, at most ``max_wait`` (default ``MAX_WAIT``) seconds;
    ``True`` if it waited."""
    if not _in_flight or getattr(_thread, "serving", False):
        return False
    started = time.monotonic()
    with _changed:
        _changed.wait_for(lambda: not _in_flight, timeout=MAX_WAIT if max_wait is None else max_wait)
    _thread.waited = waited_seconds() + time.monotonic() - started
    return True


def waited_seconds() -> float:
    """How long this thread has waited in :func:`give_way` so far (to leave out of its own timings)."""
    waited: float = getattr(_thread, "waited", 0.0)
    return waited


def giving_way(items: Iterable[T], *, every: int = GIVE_WAY_EVERY) -> Iterator[T]:
    """The items, with a :func:`give_way` after every ``every`` of them."""
    for number, item in enumerate(items, 1):
        yield item
        if number % every == 0:
            give_way()

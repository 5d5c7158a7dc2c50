"""Faults the demo upstream injects into its change feed on demand, for tests and benchmarks.

A fault plan is a queue of faults, each served to the next feed request(s),
plus an optional delay before every feed answer. It is set as a whole (``POST
/v1/_admin/faults``, ``demo_upstream --faults``) and cleared by ``{}`` or a
reset of the data set. The kinds:

* ``error``: answer HTTP ``status`` (default 500, any of 500 to 599).
* ``throttle``: answer 429, with ``Retry-After: <retry_after>`` if given (a
  number of seconds or an HTTP date, sent as written).
* ``slow``: wait ``seconds`` (default 1), then answer the page.
* ``truncate``: answer 200 with the first half of the page's JSON (a correct
  ``Content-Length``, so the HTTP exchange succeeds and only the JSON is cut).
* ``malformed``: answer 200 with a page whose first item has no valid id,
  ``updated_at`` or ``deleted`` (the contract fails the whole page).
* ``drop``: close the connection without an answer.
* ``oversize``: answer a page of ``users`` records (default ten times the
  request's ``limit``), more than the request asked for.
* ``trickle``: send the headers, then the page's body one byte every
  ``seconds`` (default 2).
* ``ok``: answer normally (to place a fault later in a run: two ``ok``, then
  ``error`` hits the third page).

Every fault has ``times`` (default 1): how many feed requests in a row get it.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any

KINDS = ("error", "throttle", "slow", "truncate", "malformed", "drop", "oversize", "trickle", "ok")
MAX_WAIT_SECONDS = 600.0


class InvalidFaults(ValueError):
    """A fault plan that breaks the rules above."""


@dataclass
class Fault:
    fault: str
    times: int = 1
    status: int | None = None
    retry_after: str | None = None
    seconds: float | None = None
    users: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass
class Plan:
    next: list[Fault] = field(default_factory=list)
    delay: float = 0.0


def parse_plan(body: dict[str, Any]) -> Plan:
    """The plan of a ``/v1/_admin/faults`` body (raises :class:`InvalidFaults`)."""
    unknown = set(body) - {"next", "delay"}
    if unknown:
        raise InvalidFaults(f"unknown keys: {', '.join(sorted(unknown))}")
    delay = _seconds(body.get("delay", 0), "delay")
    items = body.get("next", [])
    if not isinstance(items, list):
        raise InvalidFaults("next must be a list of faults")
    return Plan(next=[_parse_fault(item, position) for position, item in enumerate(items)], delay=delay)


def _parse_fault(item: Any, position: int) -> Fault:
    where = f"next[{position}]"
    if not isinstance(item, dict):
        raise InvalidFaults(f"{where} must be an object")
    kind = item.get("fault")
    if kind not in KINDS:
        raise InvalidFaults(f"{where}.fault must be one of {', '.join(KINDS)}; got {kind!r}")
    allowed = {"fault", "times"} | {
        "error": {"status"},
        "throttle": {"retry_after"},
        "slow": {"seconds"},
        "trickle": {"seconds"},
        "oversize": {"users"},
    }.get(kind, set())
    unknown = set(item) - allowed
    if unknown:
        raise InvalidFaults(f"{where}: unknown keys for {kind}: {', '.join(sorted(unknown))}")
    times = item.get("times", 1)
    if type(times) is not int or times < 1:
        raise InvalidFaults(f"{where}.times must be a whole number of at least 1")
    fault = Fault(fault=kind, times=times)
    if kind == "error":
        status = item.get("status", 500)
        if type(status) is not int or not 500 <= status <= 599:
            raise InvalidFaults(f"{where}.status must be from 500 to 599")
        fault.status = status
    elif kind == "throttle" and item.get("retry_after") is not None:
        retry_after = item["retry_after"]
        if isinstance(retry_after, bool) or not isinstance(retry_after, int | float | str):
            raise InvalidFaults(f"{where}.retry_after must be seconds or an HTTP date")
        if not isinstance(retry_after, str):
            retry_after = f"{_seconds(retry_after, f'{where}.retry_after'):g}"
        fault.retry_after = retry_after
    elif kind == "slow":
        fault.seconds = _seconds(item.get("seconds", 1.0), f"{where}.seconds")
    elif kind == "trickle":
        fault.seconds = _seconds(item.get("seconds", 2.0), f"{where}.seconds")
    elif kind == "oversize" and "users" in item:
        users = item["users"]
        if type(users) is not int or users < 1:
            raise InvalidFaults(f"{where}.users must be a whole number of at least 1")
        fault.users = users
    return fault


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_WAIT_SECONDS:
        raise InvalidFaults(f"{name} must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}")
    return float(value)


class Faults:
    """The current plan and what was served since it was set; shared by the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan = Plan()
        self._served: Counter[str] = Counter()

    def set(self, plan: Plan) -> None:
        with self._lock:
            self._plan = plan
            self._served = Counter()

    def take(self) -> tuple[Fault | None, float]:
        """The fault for the feed request now being answered (``None``: a normal page), and the delay."""
        with self._lock:
            fault = None
            if self._plan.next:
                head = self._plan.next[0]
                fault = replace(head, times=1)
                head.times -= 1
                if head.times == 0:
                    self._plan.next.pop(0)
            self._served[fault.fault if fault else "page"] += 1
            if fault is not None and fault.fault == "ok":
                fault = None
            return fault, self._plan.delay

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "next": [fault.as_json() for fault in self._plan.next],
                "delay": self._plan.delay,
                "served": dict(self._served),
            }

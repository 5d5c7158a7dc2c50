"""Polling with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Timeout(AssertionError):
    """A condition was not met in time (an assertion error, so a test fails rather than errors)."""


def wait_until(condition: Callable[[], T], *, timeout: float, interval: float = 0.05, message: str = "") -> T:
    """Poll ``condition`` until it returns something truthy; raise :class:`Timeout` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Timeout(message or f"condition not met within {timeout:g} s")
        time.sleep(interval)

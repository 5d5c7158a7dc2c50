"""The user stats cache, in Django's default cache (Redis in production).

The cache is an optimisation, never a dependency: with Redis down a read is a
miss and a write is logged and dropped, so callers fall back to the database
instead of answering 500. After a failure the cache is left alone for a few
seconds (:data:`breaker`), so a hung Redis costs one socket timeout per
process every few seconds, not one per request.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.core.cache import cache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# Versioned so that a deploy that changes the stats' shape never reads old entries.
STATS_KEY = "users:stats:v1"

# Redis client errors, and OSError for the file-based cache of the local default.
CACHE_ERRORS = (RedisError, OSError)


class CacheBreaker:
    """Per process: after a cache error, callers skip the cache for ``cool_down`` seconds."""

    def __init__(self, cool_down: float) -> None:
        self.cool_down = cool_down
        self._skip_until = 0.0
        self._lock = threading.Lock()

    def is_open(self) -> bool:
        """``True`` while callers should not touch the cache."""
        return time.monotonic() < self._skip_until

    def trip(self) -> None:
        with self._lock:
            self._skip_until = time.monotonic() + self.cool_down

    def reset(self) -> None:
        with self._lock:
            self._skip_until = 0.0


breaker = CacheBreaker(cool_down=5.0)


def stats_get() -> dict[str, Any] | None:
    """The cached stats, or ``None`` on a miss or when the cache is unreachable."""
    if breaker.is_open():
        return None
    try:
        value = cache.get(STATS_KEY)
    except CACHE_ERRORS as exc:
        breaker.trip()
        logger.warning("user stats cache read failed, computing from the database: %s", exc)
        return None
    return value if isinstance(value, dict) else None


def stats_set(stats: dict[str, Any], *, timeout: float) -> bool:
    """Store the stats; ``False`` (and a log line) when the cache is unreachable."""
    if breaker.is_open():
        return False
    try:
        cache.set(STATS_KEY, stats, timeout=timeout)
    except CACHE_ERRORS as exc:
        breaker.trip()
        logger.warning("user stats cache write failed, the stats stay uncached: %s", exc)
        return False
    return True

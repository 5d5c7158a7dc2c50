"""The user stats cache, in Django's default cache (Redis in production).

The cache is an optimisation, never a dependency: with Redis down a read is a
miss and a write is logged and dropped, so callers fall back to the database
instead of answering 500.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import cache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# Versioned so that a deploy that changes the stats' shape never reads old entries.
STATS_KEY = "users:stats:v1"

# Redis client errors, and OSError for the file-based cache of the local default.
CACHE_ERRORS = (RedisError, OSError)


def stats_get() -> dict[str, Any] | None:
    """The cached stats, or ``None`` on a miss or when the cache is unreachable."""
    try:
        value = cache.get(STATS_KEY)
    except CACHE_ERRORS as exc:
        logger.warning("user stats cache read failed, computing from the database: %s", exc)
        return None
    return value if isinstance(value, dict) else None


def stats_set(stats: dict[str, Any], *, timeout: float) -> bool:
    """Store the stats; ``False`` (and a log line) when the cache is unreachable."""
    try:
        cache.set(STATS_KEY, stats, timeout=timeout)
    except CACHE_ERRORS as exc:
        logger.warning("user stats cache write failed, the stats stay uncached: %s", exc)
        return False
    return True

"""The dependency checks behind ``/readyz``: the database and, when configured, Redis.

Each check answers ``"ok"``, ``"not configured"`` or ``"down: <error>"`` and
never raises, so readiness can always answer. They are this package's only
network I/O and are kept here, apart from the views, like the repositories
of the other apps. Both are bounded in time: PostgreSQL by its ``connect_timeout``
(``config/settings.py``), Redis by the socket timeouts below.
"""

from __future__ import annotations

import threading

import redis
from django.conf import settings
from django.db import connections

from stayy.conf import stayy_settings

OK = "ok"
NOT_CONFIGURED = "not configured"
#: Seconds to connect to Redis and to wait for its PONG; probes run every few seconds.
REDIS_TIMEOUT = 0.5
ERROR_MAX_CHARS = 300

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def describe_down(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"down: {text[:ERROR_MAX_CHARS]}"


def database() -> str:
    """``SELECT 1`` on the default database, through this thread's usual connection."""
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return describe_down(exc)
    return OK


def _redis_client(url: str) -> redis.Redis:
    """One client (and connection pool) per URL for the process; redis-py reopens it after fork."""
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = redis.Redis.from_url(
                url,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
                health_check_interval=0,
            )
            _clients[url] = client
        return client


def redis_urls() -> list[str]:
    """Every Redis the service uses: the cache's and the lease's (normally one and the same)."""
    urls = [getattr(settings, "REDIS_URL", ""), stayy_settings.redis_url]
    return list(dict.fromkeys(url for url in urls if url))


def redis_ping() -> str:
    """``PING`` every configured Redis; ``"not configured"`` without ``REDIS_URL``."""
    urls = redis_urls()
    if not urls:
        return NOT_CONFIGURED
    for url in urls:
        try:
            _redis_client(url).ping()
        except Exception as exc:
            return describe_down(exc)
    return OK

"""The leader lease: in Redis when ``REDIS_URL`` is set, else in the database.

Redis: redis-py's :class:`~redis.lock.Lock` (SET NX PX to take it, token-checked
scripts to extend and release it), on a client whose socket timeouts are a
sixth of the TTL so a stalled renew cannot outlive the lease. Database: one
conditional UPDATE takes or renews the row, on SQLite and PostgreSQL alike,
with expiry times on the database's clock (``now()``), so a host whose clock
is off neither takes a live lease nor keeps an expired one. Either way the
``LeaderLease`` row tells the API and the admin who leads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from datetime import timedelta
from typing import Any, Protocol

import redis
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q
from django.db.models.functions import Now
from redis.exceptions import LockError, LockNotOwnedError

from stayy.models import LeaderLease

logger = logging.getLogger("stayy.jobs")

HOST = socket.gethostname()


def _leader_fields(*, token: str, backend: str, ttl: float) -> dict[str, Any]:
    """The lease row's fields for a leader in this process, starting its term now (database clock)."""
    return {
        "holder": token,
        "host": HOST,
        "pid": os.getpid(),
        "backend": backend,
        "since": Now(),
        "expires_at": _expiry(ttl),
    }


def _expiry(ttl: float) -> Any:
    return Now() + timedelta(seconds=ttl)


class LeaseUnavailable(Exception):
    """The lease backend cannot be reached; a leader must stop scheduling."""


class Lease(Protocol):
    backend: str

    def acquire(self) -> bool: ...

    def renew(self) -> bool: ...

    def release(self) -> None: ...


class DatabaseLease:
    """The lease as a row, taken and renewed by one conditional UPDATE."""

    backend = "database"

    def __init__(self, *, name: str, token: str, ttl: float) -> None:
        self.name, self.token, self.ttl = name, token, ttl

    def acquire(self) -> bool:
        fields = _leader_fields(token=self.token, backend=self.backend, ttl=self.ttl)
        # Our own unexpired row counts as free: a term that ended without a release
        # (e.g. the database blinked) can be resumed at once.
        free = Q(holder="") | Q(holder=self.token) | Q(expires_at__lt=Now()) | Q(expires_at__isnull=True)
        if LeaderLease.objects.filter(Q(name=self.name) & free).update(**fields):
            return True
        try:
            with transaction.atomic():
                LeaderLease.objects.create(name=self.name, **fields)
        except IntegrityError:
            return False
        return True

    def renew(self) -> bool:
        return bool(
            LeaderLease.objects.filter(name=self.name, holder=self.token).update(expires_at=_expiry(self.ttl))
        )

    def release(self) -> None:
        LeaderLease.objects.filter(name=self.name, holder=self.token).update(holder="", expires_at=Now())


class RedisLease:
    """The lease as a Redis key holding this candidate's token, with a TTL."""

    backend = "redis"

    def __init__(self, *, name: str, token: str, ttl: float, url: str) -> None:
        self.name, self.token, self.ttl = name, token, ttl
        self.key = f"stayy:lease:{name}"
        timeout = max(0.2, ttl / 6)
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.lock = self.client.lock(self.key, timeout=ttl, blocking=False, thread_local=False)

    def acquire(self) -> bool:
        try:
            acquired = bool(self.lock.acquire(blocking=False, token=self.token)) or self._adopt_own_key()
        except redis.RedisError as exc:
            raise LeaseUnavailable(f"Redis unreachable: {exc}") from exc
        if acquired:
            self._publish()
        return acquired

    def _adopt_own_key(self) -> bool:
        """Take the lease if the key already holds this candidate's token.

        An acquire that timed out here may still have reached Redis (a stalled
        server runs the queued SET when it resumes), or a term ended without
        releasing: the key is ours, but nobody renews it. Extend it from now,
        token-checked, rather than leave the cluster without a leader for a TTL.
        """
        token = self.token.encode()
        if self.client.get(self.key) != token:
            return False
        self.lock.local.token = token
        try:
            self.lock.reacquire()
        except LockError:  # expired (or taken) since the GET
            self.lock.local.token = None
            return False
        return True

    def renew(self) -> bool:
        try:
            self.lock.reacquire()
            self._publish(renewed=True)
        except LockNotOwnedError:
            return False
        except LockError:
            return False
        except redis.RedisError as exc:
            raise LeaseUnavailable(f"Redis unreachable: {exc}") from exc
        return True

    def release(self) -> None:
        try:
            self.lock.release()
        except (LockError, redis.RedisError) as exc:
            logger.info("lease %s not released cleanly (%s); it expires by itself", self.key, exc)
        # Only informational here; the Redis key was the lease.
        with contextlib.suppress(DatabaseError):
            LeaderLease.objects.filter(name=self.name, holder=self.token).update(holder="", expires_at=Now())

    def _publish(self, *, renewed: bool = False) -> None:
        """Tell the API and admin who leads and until when; the lease itself is in Redis.

        Best effort: a database hiccup must not cost the lease.
        """
        try:
            if renewed:
                LeaderLease.objects.filter(name=self.name, holder=self.token).update(
                    expires_at=_expiry(self.ttl)
                )
                return
            fields = _leader_fields(token=self.token, backend=self.backend, ttl=self.ttl)
            LeaderLease.objects.update_or_create(name=self.name, defaults=fields)
        except DatabaseError as exc:
            logger.warning("could not record the leader in the database: %s", exc)


def backend_for(redis_url: str) -> str:
    """Which lease backend a cluster with this ``REDIS_URL`` uses."""
    return RedisLease.backend if redis_url else DatabaseLease.backend


def build_lease(*, name: str, token: str, ttl: float, redis_url: str) -> Lease:
    if redis_url:
        return RedisLease(name=name, token=token, ttl=ttl, url=redis_url)
    return DatabaseLease(name=name, token=token, ttl=ttl)


def check_database() -> None:
    """Raise :class:`~django.db.DatabaseError` unless the database answers.

    Leading needs the database as much as the lease (ticks are claimed there),
    whichever backend holds the lease.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def current_leader(name: str) -> LeaderLease | None:
    """The lease's holder, unless its lease expired (by the database's clock)."""
    unexpired = Q(expires_at__isnull=True) | Q(expires_at__gte=Now())
    return LeaderLease.objects.filter(unexpired, name=name).exclude(holder="").first()

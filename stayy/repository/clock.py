"""The cluster's clock: this host's time corrected to the database's.

Every process of a cluster agrees on the database's time. Tick times,
lateness, catch-up windows and the times of run rows are judged by
:data:`cluster_clock`, so a host whose clock is a minute off still fires its
ticks on time, records none as missed and writes true start and end times.
A job server measures the offset when its term begins and at every lease
renewal (the error is at most half a round trip to the database); a process
that never measured uses its own clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone


def database_now() -> datetime:
    """The database server's time (PostgreSQL's ``statement_timestamp()``); SQLite runs on this host."""
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        row = cursor.fetchone()
    return row[0]


class ClusterClock:
    """``now()`` on the database's clock, as last measured by :meth:`measure`."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return timezone.now() + self.offset

    def measure(self) -> None:
        """Read the database's time and keep the offset of this host's clock to it."""
        before = timezone.now()
        remote = database_now()
        after = timezone.now()
        self.offset = remote - (before + (after - before) / 2)


cluster_clock = ClusterClock()

"""Leadership of one ``JOB_NAME``: the lease, its terms, and whether this process leads now.

In the manner of Oban's ``Peer``: everything else only asks. :meth:`Leadership.step`
takes the lease while this process is a candidate and renews it (every third of the
TTL) while it leads; each time the lease is taken a new :class:`Term` begins. The
dispatcher asks :attr:`Leadership.term` which term it is in and
:meth:`Leadership.is_leader` whether that term still holds before it claims a
tick; it never touches the lease.

A term holds for a TTL from the moment the last successful renewal was asked
for, on this process's monotonic clock: a process that was stopped, or whose
renewal hangs, stops leading by its own reckoning before the lease can expire
for the others. A term that could not be renewed for two thirds of the TTL
ends at once; one whose loop is stuck in a call (a silent network partition)
is ended by its timer when its time is up (:mod:`stayy.scheduling.timer`).
The cluster's clock (:mod:`stayy.repository.clock`) is measured again at
every renewal.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError

from stayy.observability import metrics
from stayy.repository import leases
from stayy.repository.clock import ClusterClock

logger = logging.getLogger("stayy.jobs")

#: Seconds between a candidate's tries to take the lease (at most a third of the TTL).
CANDIDATE_POLL = 0.5


@dataclass(frozen=True)
class Term:
    """One uninterrupted hold of the lease by this process."""

    number: int
    since: datetime  # on the cluster's clock


class Leadership:
    """This process's candidacy for the lease of ``name``; driven by :meth:`step`."""

    def __init__(self, *, name: str, lease: leases.Lease, ttl: float, clock: ClusterClock) -> None:
        self.name = name
        self.lease = lease
        self.ttl = ttl
        self.clock = clock
        self.term: Term | None = None
        self._terms = 0
        self._valid_until = 0.0  # monotonic end of the term as this process last renewed it
        self._next_renew = 0.0
        self._holds_lease = False  # taken and not seen lost: released on the way out
        self._problem = ""
        self._lock = threading.Lock()  # the term ends in this loop's thread or in its timer's

    def is_leader(self, term: Term | None = None) -> bool:
        """Whether this process leads now (in ``term``, if given) and its lease cannot have expired."""
        current = self.term
        if current is None or (term is not None and term != current):
            return False
        return time.monotonic() < self._valid_until

    def step(self) -> float:
        """Take or renew the lease as due; the seconds until the next step is due.

        Raises :class:`~django.db.DatabaseError` or :class:`~stayy.repository.leases.LeaseUnavailable`
        when the lease or the database cannot be reached; the caller then calls :meth:`lost_contact`.
        """
        if self.term is None:
            return self._try_acquire()
        now = time.monotonic()
        if now >= self._next_renew:
            if not self.lease.renew():
                self._holds_lease = False
                self.step_down("lease lost to another candidate")
                return 0.0
            self._renewed(asked_at=now)
        if time.monotonic() > self._valid_until - self.ttl / 3:
            self.step_down("lease not renewed in time")
            return 0.0
        return max(0.0, self._next_renew - time.monotonic())

    def _try_acquire(self) -> float:
        if self._problem:
            # A Redis lease can be refused (or even taken) while the database is still down: only
            # a database that answers ends the problem, so a long outage is logged once.
            leases.check_database()
        asked_at = time.monotonic()
        if not self.lease.acquire():
            return min(CANDIDATE_POLL, self.ttl / 3)
        self._holds_lease = True
        try:
            self._renewed(asked_at=asked_at)
        except Exception:
            # Do not sit on a lease this process cannot lead with (the database is away).
            self.release()
            raise
        self._terms += 1
        self.term = Term(number=self._terms, since=self.clock.now())
        metrics.set_leader(self.name, True)
        logger.info("took the lease of %s (%s lease, term %d)", self.name, self.lease.backend, self._terms)
        return max(0.0, self._next_renew - time.monotonic())

    def _renewed(self, *, asked_at: float) -> None:
        self._valid_until = asked_at + self.ttl
        self._next_renew = asked_at + self.ttl / 3
        self.clock.measure()

    def step_down(self, why: str, *, term: Term | None = None) -> None:
        """End the term now (only ``term``, if given); the lease is left to expire (or released by
        :meth:`release`). The timer of a term may call it from its own thread."""
        with self._lock:
            if self.term is None or (term is not None and term != self.term):
                return
            self.term = None
            self._valid_until = 0.0
        metrics.set_leader(self.name, False)
        log = logger.info if why == "stopping" else logger.warning
        log("leadership of %s ended: %s", self.name, why)

    def release(self) -> None:
        """Hand the lease on now (after :meth:`step_down`); a failure leaves it to expire."""
        self.step_down("stopping")
        if not self._holds_lease:
            return
        self._holds_lease = False
        try:
            self.lease.release()
        except (DatabaseError, leases.LeaseUnavailable) as exc:
            logger.warning("lease not released (%s); it expires within %g s", exc, self.ttl)

    def lost_contact(self, problem: str) -> None:
        """The lease or the database failed: end the term; log the problem once, until :meth:`reachable`."""
        if problem != self._problem:
            logger.error("job server %s: %s; not scheduling until it recovers", self.name, problem)
            self._problem = problem
        self.step_down("lost contact with the lease or database")

    def reachable(self) -> None:
        """A whole turn succeeded: the problem, if any, is over."""
        if self._problem:
            logger.warning("job server %s: dependencies reachable again", self.name)
            self._problem = ""

"""The job server: a lease candidate that runs a scheduler only while it leads.

Any number of job servers (gunicorn workers, hosts, ``runjobs`` processes) can
run with ``JOB_ENABLE`` on. Each is a candidate for the lease of its
``JOB_NAME``; the one holding it starts a timer for its term
(:mod:`stayy.scheduling.timer`) on the cluster's clock (the database's time,
measured at every renewal) and schedules the catalog. Every tick it fires is
claimed in the database before it runs, so even a leader that lost its lease
without noticing cannot run a tick twice. Ticks and manual runs execute in the
server's pool of long-lived threads (:mod:`stayy.scheduling.tick_pool`), which
outlives terms and is joined at :meth:`JobServer.stop`. Pause, resume and
run-now are rows that the leader polls every half second; the same loop closes
the runs of lost processes, at most once a second, never a run this process
executes, and only once a full ``JOB_RUN_STALE_AFTER`` has passed since its
term began: heartbeats written while no leader could reach the database, or
while this process was stopped, are not held against anyone. A leader that
cannot renew its lease ends its term at once, well before the lease could
expire.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Literal

from django.db import DatabaseError, close_old_connections

from stayy.conf import stayy_settings
from stayy.models import JobRun
from stayy.observability import metrics
from stayy.repository import catalog, leases, runs
from stayy.repository.clock import cluster_clock
from stayy.scheduling import registry, runner
from stayy.scheduling.registry import JobSpec
from stayy.scheduling.tick_pool import TickPool
from stayy.scheduling.timer import TickTimer
from stayy.scheduling.tracker import tracker

logger = logging.getLogger("stayy.jobs")

State = Literal["candidate", "leader", "stopped"]
CONTROL_POLL = 0.5
#: Seconds between a candidate's tries to take the lease (at most a third of the TTL).
CANDIDATE_POLL = 0.5
#: Seconds between two searches for runs of lost processes (by the leader's loop).
REAP_INTERVAL = 1.0


class JobServer:
    """One process's job server; :meth:`start` runs it in a background thread."""

    def __init__(self, *, name: str, lease: leases.Lease | None = None) -> None:
        self.name = name
        self.token = uuid.uuid4().hex
        self.ttl = stayy_settings.lease_ttl
        self.lease = lease or leases.build_lease(
            name=name, token=self.token, ttl=self.ttl, redis_url=stayy_settings.redis_url
        )
        self.state: State = "candidate"
        self.leader_since: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timer: TickTimer | None = None
        self.clock = cluster_clock
        self._specs: dict[str, JobSpec] = {}
        self._valid_until = 0.0  # monotonic end of the lease as this process last renewed it
        self._next_renew = 0.0
        self._next_reap = 0.0
        self._next_publish = 0.0
        self._problem = ""
        self._holds_lease = False  # this process took the lease and has not seen it lost
        self._inflight: dict[tuple[str, datetime], threading.Thread] = {}  # ticks on their way to a claim
        self._inflight_lock = threading.Lock()
        self._inflight_left = threading.Condition(self._inflight_lock)
        self.pool = TickPool(keep=stayy_settings.tick_threads)

    # --- lifecycle --------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="stayy-job-server", daemon=True)
        self._thread.start()

    def run_forever(self) -> None:
        """The candidate/leader loop; returns after :meth:`stop` (or :meth:`request_stop`)."""
        logger.info("job server %s started (lease in %s, TTL %g s)", self.name, self.lease.backend, self.ttl)
        while not self._stop.is_set():
            try:
                if self.state == "leader":
                    self._lead_once()
                    wait = CONTROL_POLL
                else:
                    if self._problem:
                        # A Redis lease can be refused (or even taken) while the database is
                        # still down: only a database that answers ends the problem, so a long
                        # outage is logged once, not once per lease expiry.
                        leases.check_database()
                    wait = 0.0 if self._try_acquire() else min(CANDIDATE_POLL, self.ttl / 3)
                self._set_problem("")
            except (DatabaseError, leases.LeaseUnavailable) as exc:
                self._set_problem(f"{type(exc).__name__}: {exc}")
                if self.state == "leader":
                    self._end_term(release=False, why="lost contact with the lease or database")
                close_old_connections()
                wait = min(1.0, self.ttl / 3)
            except Exception:
                logger.exception("job server loop error")
                if self.state == "leader":
                    self._end_term(release=False, why="internal error")
                wait = 1.0
            self._stop.wait(wait)
        if self.state == "leader":
            self._end_term(release=False, why="stopping")
        self.state = "stopped"

    def request_stop(self) -> None:
        """Stop taking ticks: the loop ends its term and exits (used by signal handlers)."""
        self._stop.set()

    def stop(self, *, grace: float) -> None:
        """Stop taking ticks, release the lease, cancel running jobs and wait up to ``grace`` s for them."""
        with self._inflight_lock:
            self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(5.0, self.ttl))
        elif self.state == "leader":
            self._end_term(release=False, why="stopping")
        if self._thread is None or not self._thread.is_alive():
            # The term is over: hand the lease on now, not after the grace. Runs still executing
            # here keep their rows active, so the next leader skips their ticks until they return.
            self._release_lease()
        started = time.monotonic()
        self._join_ticks_in_flight(grace)
        # The loop has ended: nothing submits to the pool any more, and it takes nothing new.
        self.pool.close()
        tracker.cancel_all("shutdown")
        if not tracker.wait_idle(max(0.0, grace - (time.monotonic() - started))):
            left = list(tracker.running())
            try:
                close_old_connections()
                closed = runs.abandon(
                    left, reason=f"abandoned at shutdown: still running after {grace:g} s grace"
                )
                logger.warning(
                    "shutdown: abandoned %d run(s) still executing after %g s: %s", closed, grace, left
                )
                for run_id in left:
                    runner.retry_later(run_id)
            except DatabaseError as exc:
                logger.error("shutdown: could not record abandoned runs %s: %s", left, exc)
        # Idle threads end at once; one whose run was abandoned above ends when its handler returns.
        if not self.pool.join(max(0.0, grace - (time.monotonic() - started))):
            logger.warning("shutdown: %d job thread(s) still busy after the grace", len(self.pool.threads()))
        self._release_lease()
        self.state = "stopped"
        logger.info("job server %s stopped", self.name)

    def _release_lease(self) -> None:
        if not self._holds_lease:
            return
        self._holds_lease = False
        try:
            close_old_connections()  # this thread's connection may predate a database restart
            self.lease.release()
        except (DatabaseError, leases.LeaseUnavailable) as exc:
            logger.warning("lease not released (%s); it expires within %g s", exc, self.ttl)

    def is_leader(self) -> bool:
        return self.state == "leader" and time.monotonic() < self._valid_until

    # --- leadership -------------------------------------------------------
    def _try_acquire(self) -> bool:
        asked_at = time.monotonic()
        if not self.lease.acquire():
            return False
        self._valid_until = asked_at + self.ttl
        self._holds_lease = True
        try:
            self._begin_term()
        except Exception:
            # Do not sit on a lease this process cannot lead with until it expires: another
            # candidate may be able to lead.
            if self.state == "leader":
                self._end_term(release=False, why="could not start the term")
            self._release_lease()
            raise
        return True

    def _begin_term(self) -> None:
        specs = registry.all_jobs()
        self._specs = {spec.name: spec for spec in specs}
        self.clock.measure()
        now = self.clock.now()
        rows = catalog.sync_from_specs(specs, now=now)
        timer = TickTimer(clock=self.clock.now, on_due=self._submit_tick)
        for spec in specs:
            if spec.enabled:
                # Ticks up to the job's jitter before now may not be due yet: the timer has them.
                horizon = now - timedelta(seconds=spec.jitter)
                paused = rows[spec.name].paused
                timer.add(spec.name, spec.schedule, paused=paused, now=horizon, delay=spec.jitter_delay)
        self._timer = timer
        self.state = "leader"
        metrics.set_leader(self.name, True)
        self.leader_since = self.clock.now()
        self._next_renew = time.monotonic() + self.ttl / 3
        # Heartbeats could not be seen while no term ran (the database may have been away).
        self._next_reap = time.monotonic() + stayy_settings.run_stale_after
        self._next_publish = 0.0
        logger.info(
            "became leader of %s (%s lease); scheduling %d job(s)",
            self.name,
            self.lease.backend,
            sum(1 for s in specs if s.enabled),
        )
        self._catch_up(rows, now=now)
        timer.start()
        self._publish_next_runs()

    def _end_term(self, *, release: bool, why: str) -> None:
        timer, self._timer = self._timer, None
        self.state = "candidate"
        metrics.set_leader(self.name, False)
        self._valid_until = 0.0
        if timer is not None:
            timer.stop()
        log = logger.info if why == "stopping" else logger.warning
        log("leadership of %s ended: %s", self.name, why)
        if release and self._holds_lease:
            self._holds_lease = False
            self.lease.release()

    def _catch_up(self, rows: dict, *, now: datetime) -> None:
        """Run (once) the newest tick owed since the last leader, if still within its grace, and
        record the others missed; the timer fires the ticks after ``now``."""
        for spec in self._specs.values():
            if not spec.enabled or rows[spec.name].paused:
                continue
            owed = runner.owed_ticks(spec, now=now - timedelta(seconds=spec.jitter))
            if owed:
                self._submit_tick(spec.name, owed[-1], owed[:-1])

    def _submit_tick(self, job_id: str, scheduled_for: datetime, missed: list[datetime]) -> None:
        self.pool.submit(self._on_due, job_id, scheduled_for, missed, name=f"stayy-job-{job_id}")

    def _on_due(self, job_id: str, scheduled_for: datetime, missed: list[datetime]) -> None:
        spec = self._specs.get(job_id)
        if spec is None:
            return
        key = (job_id, scheduled_for)
        with self._inflight_lock:
            if self._stop.is_set():
                return
            self._inflight[key] = threading.current_thread()
        try:
            runner.run_tick(
                spec,
                scheduled_for,
                still_leader=self.is_leader,
                missed_before=missed,
                on_started=lambda: self._leave_inflight(key),
            )
        finally:
            self._leave_inflight(key)

    def _leave_inflight(self, key: tuple[str, datetime]) -> None:
        with self._inflight_lock:
            self._inflight.pop(key, None)
            self._inflight_left.notify_all()

    def _join_ticks_in_flight(self, timeout: float) -> None:
        """Wait for ticks still on their way to a claim, so none starts after :meth:`stop`.

        A tick leaves the in-flight set once its run is in the tracker, where shutdown cancels it
        (its thread stays in the pool, which :meth:`stop` joins later).
        """
        deadline = time.monotonic() + timeout
        me = threading.current_thread()
        with self._inflight_lock:
            while any(thread is not me for thread in self._inflight.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._inflight_left.wait(left)

    # --- one turn of the leader loop -------------------------------------
    def _lead_once(self) -> None:
        close_old_connections()
        now = time.monotonic()
        if now >= self._next_renew:
            asked_at = time.monotonic()
            if not self.lease.renew():
                self._holds_lease = False
                self._end_term(release=False, why="lease lost to another candidate")
                return
            self._valid_until = asked_at + self.ttl
            self._next_renew = asked_at + self.ttl / 3
            self.clock.measure()
        if time.monotonic() > self._valid_until - self.ttl / 3:
            self._end_term(release=False, why="lease not renewed in time")
            return
        self._apply_pauses()
        self._start_queued_runs()
        if now >= self._next_reap:
            self._next_reap = now + REAP_INTERVAL
            runner.reap_lost_runs()
        if now >= self._next_publish:
            self._next_publish = now + max(1.0, stayy_settings.run_stale_after / 3)
            self._publish_next_runs()

    def _apply_pauses(self) -> None:
        timer = self._timer
        if timer is None:
            return
        changed = False
        for name, paused in catalog.pause_states().items():
            if not timer.set_paused(name, paused):
                continue
            changed = True
            if not paused:
                catalog.mark_resumed(name, now=self.clock.now())
            logger.info("%s %s", name, "paused" if paused else "resumed")
        if changed:
            self._publish_next_runs()

    def _start_queued_runs(self) -> None:
        for queued in runs.queued_runs():
            if self._stop.is_set():
                return  # a run claimed now could no longer be handed to the (closing) pool
            spec = self._specs.get(queued.job_name)
            if spec is None:
                runs.close_queued(
                    queued.pk,
                    status=JobRun.Status.FAILED,
                    reason=f"unknown job {queued.job_name!r} on the leader",
                )
                continue
            try:
                claimed = runs.claim_queued(queued.pk, job_name=spec.name)
            except runs.JobExecuting as busy:
                if queued.trigger == JobRun.Trigger.MANUAL:
                    reason = runner.overlap_reason(busy.run)
                    runs.close_queued(queued.pk, status=JobRun.Status.SKIPPED, reason=reason)
                # A waiting tick (overlap "queue") or a retry waits until the job's slot is free.
                continue
            if claimed:
                self.pool.submit(runner.run_manual, spec, queued.pk, name=f"stayy-job-{spec.name}")

    def _publish_next_runs(self) -> None:
        timer = self._timer
        if timer is None:
            return
        next_runs: dict[str, datetime | None] = dict.fromkeys(self._specs)
        next_runs.update(timer.next_run_times())
        catalog.set_next_run_times(next_runs)

    def _set_problem(self, problem: str) -> None:
        """Log a dependency problem once when it starts and once when it ends, not every turn."""
        if problem == self._problem:
            return
        if problem:
            logger.error("job server %s: %s; not scheduling until it recovers", self.name, problem)
        else:
            logger.warning("job server %s: dependencies reachable again", self.name)
        self._problem = problem

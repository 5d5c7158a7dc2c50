"""The job server: a lease candidate that schedules the catalog while it leads.

Any number of job servers (gunicorn workers, hosts, ``runjobs`` processes) can
run with ``JOB_ENABLE`` on. Each asks its :class:`~stayy.scheduling.leadership.Leadership`
for the lease of its ``JOB_NAME``; in each term it holds, it starts a timer
(:mod:`stayy.scheduling.timer`) on the cluster's clock and schedules the
catalog. Every tick it fires is claimed in the database before it runs, and
only while its term still holds, so even a leader that lost its lease without
noticing cannot run a tick twice. Ticks and manual runs execute in the
server's pool of long-lived threads (:mod:`stayy.scheduling.tick_pool`), which
outlives terms and is joined at :meth:`JobServer.stop`. A tick's whole path:
the timer fires it, :meth:`JobServer._on_due` takes it in a pool thread,
:func:`~stayy.scheduling.runner.run_tick` judges it and
:func:`~stayy.repository.runs.claim_tick` claims it with one insert.

One loop does it all, every half second: a step of the leadership, then, while
it leads, pause and resume, queued runs (run now, waiting ticks, retries) and
the closing of runs of lost processes. The reaper never closes a run this
process executes and starts a full ``JOB_RUN_STALE_AFTER`` into each term:
heartbeats written while no leader could reach the database, or while this
process was stopped, are not held against anyone.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

from django.db import DatabaseError, close_old_connections

from stayy.conf import stayy_settings
from stayy.models import JobRun
from stayy.repository import catalog, leases, runs
from stayy.repository.clock import cluster_clock
from stayy.scheduling import alerts, registry, runner
from stayy.scheduling.leadership import Leadership, Term
from stayy.scheduling.registry import JobSpec
from stayy.scheduling.tick_pool import TickPool
from stayy.scheduling.timer import TickTimer
from stayy.scheduling.tracker import tracker

logger = logging.getLogger("stayy.jobs")

State = Literal["candidate", "leader", "stopped"]
CONTROL_POLL = 0.5
#: Seconds between two searches for runs of lost processes (by the leader's loop).
REAP_INTERVAL = 1.0


class JobServer:
    """One process's job server; :meth:`start` runs it in a background thread."""

    def __init__(self, *, name: str, lease: leases.Lease | None = None) -> None:
        self.name = name
        self.token = uuid.uuid4().hex
        self.ttl = stayy_settings.lease_ttl
        self.clock = cluster_clock
        self.lease = lease or leases.build_lease(
            name=name, token=self.token, ttl=self.ttl, redis_url=stayy_settings.redis_url
        )
        self.leadership = Leadership(name=name, lease=self.lease, ttl=self.ttl, clock=self.clock)
        self.state: State = "candidate"
        self._term: Term | None = None  # the term this server schedules in
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timer: TickTimer | None = None
        self._specs: dict[str, JobSpec] = {}
        self._edits: dict[str, dict[str, Any]] = {}  # the live edits each spec was built with
        self._next_reap = 0.0
        self._next_publish = 0.0
        self._inflight: dict[tuple[str, datetime], threading.Thread] = {}  # ticks on their way to a claim
        self._inflight_lock = threading.Lock()
        self._inflight_left = threading.Condition(self._inflight_lock)
        self.pool = TickPool(keep=stayy_settings.tick_threads)

    @property
    def leader_since(self) -> datetime | None:
        return self._term.since if self._term is not None else None

    def is_leader(self) -> bool:
        return self.state == "leader" and self.leadership.is_leader(self._term)

    # --- lifecycle --------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="stayy-job-server", daemon=True)
        self._thread.start()

    def run_forever(self) -> None:
        """The server's loop; returns after :meth:`stop` (or :meth:`request_stop`)."""
        logger.info("job server %s started (lease in %s, TTL %g s)", self.name, self.lease.backend, self.ttl)
        while not self._stop.is_set():
            try:
                wait = self.leadership.step()
                self._follow(self.leadership.term)
                if self.state == "leader":
                    self._dispatch_once()
                    wait = min(wait, CONTROL_POLL)
                self.leadership.reachable()
            except (DatabaseError, leases.LeaseUnavailable) as exc:
                self.leadership.lost_contact(f"{type(exc).__name__}: {exc}")
                self._follow(None)
                close_old_connections()
                wait = min(1.0, self.ttl / 3)
            except Exception:
                logger.exception("job server loop error")
                self.leadership.step_down("internal error")
                self._follow(None)
                wait = 1.0
            self._stop.wait(wait)
        self.leadership.step_down("stopping")
        self._follow(None)
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
        else:
            self.leadership.step_down("stopping")
            self._follow(None)
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
            executing = tracker.running()
            left = list(executing)
            try:
                close_old_connections()
                closed = runs.abandon(
                    left, reason=f"abandoned at shutdown: still running after {grace:g} s grace"
                )
                logger.warning(
                    "shutdown: abandoned %d run(s) still executing after %g s: %s", closed, grace, left
                )
                for run_id, ctx in executing.items():
                    alerts.run_ended(job_name=ctx.job_name, run_id=run_id, status=JobRun.Status.FAILED)
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
        close_old_connections()  # this thread's connection may predate a database restart
        self.leadership.release()

    # --- terms ------------------------------------------------------------
    def _follow(self, term: Term | None) -> None:
        """Stop scheduling when the term this server schedules in is over; begin a new one's."""
        if term == self._term:
            return
        timer, self._timer = self._timer, None
        self._term = None
        self.state = "candidate"
        if timer is not None:
            timer.stop()
        if term is not None:
            try:
                self._begin_term(term)
            except Exception:
                # Do not sit on a lease this process cannot lead with until it expires: another
                # candidate may be able to lead.
                self._release_lease()
                raise

    def _begin_term(self, term: Term) -> None:
        edits = catalog.all_edits()
        specs = [registry.edited(spec, edits.get(spec.name)) for spec in registry.all_jobs()]
        self._specs = {spec.name: spec for spec in specs}
        self._edits = {spec.name: edits.get(spec.name, {}) for spec in specs}
        now = self.clock.now()
        rows = catalog.sync_from_specs(specs, now=now)
        timer = TickTimer(
            clock=self.clock.now,
            on_due=self._submit_tick,
            holds=lambda: self.leadership.is_leader(term),
            on_lapse=lambda: self.leadership.step_down("lease not renewed in time", term=term),
        )
        for spec in specs:
            if spec.enabled:
                # Ticks up to the job's jitter before now may not be due yet: the timer has them.
                horizon = now - timedelta(seconds=spec.jitter)
                paused = rows[spec.name].paused
                timer.add(spec.name, spec.schedule, paused=paused, now=horizon, delay=spec.jitter_delay)
        self._timer = timer
        self._term = term
        self.state = "leader"
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
        term = self._term
        if term is not None:
            self.pool.submit(self._on_due, term, job_id, scheduled_for, missed, name=f"stayy-job-{job_id}")

    def _on_due(self, term: Term, job_id: str, scheduled_for: datetime, missed: list[datetime]) -> None:
        """Claim and run a tick of ``term``, as long as that term still holds."""
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
                still_leader=lambda: self.leadership.is_leader(term),
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

    # --- one turn of the leader's loop ------------------------------------
    def _dispatch_once(self) -> None:
        close_old_connections()
        now = time.monotonic()
        self._apply_controls()
        self._start_queued_runs()
        if now >= self._next_reap:
            self._next_reap = now + REAP_INTERVAL
            runner.reap_lost_runs()
        if now >= self._next_publish:
            self._next_publish = now + max(1.0, stayy_settings.run_stale_after / 3)
            self._publish_next_runs()
        alerts.sender.poll(specs=list(self._specs.values()))

    def _apply_controls(self) -> None:
        """Follow what any process may change: pause and resume, and live edits of the options."""
        timer = self._timer
        if timer is None:
            return
        changed = False
        for name, (paused, edits) in catalog.control_states().items():
            if name not in self._specs:
                continue
            if edits != self._edits.get(name, {}):
                self._apply_edits(timer, name, edits, paused=paused)
                changed = True
            if not timer.set_paused(name, paused):
                continue
            changed = True
            if not paused:
                catalog.mark_resumed(name, now=self.clock.now())
            logger.info("%s %s", name, "paused" if paused else "resumed")
        if changed:
            self._publish_next_runs()

    def _apply_edits(self, timer: TickTimer, name: str, edits: dict[str, Any], *, paused: bool) -> None:
        """Run ``name`` with its new live edits from its next tick; a run in flight finishes as it is."""
        old, spec = self._specs[name], registry.edited(registry.get(name), edits)
        self._specs[name], self._edits[name] = spec, edits
        now = self.clock.now()
        row = catalog.sync_from_specs([spec], now=now)[name]
        logger.info(
            "%s: options edited live (%s); scheduled as %s", name, edits or "reset", spec.schedule.describe()
        )
        if (spec.schedule.key, spec.enabled, spec.jitter) == (old.schedule.key, old.enabled, old.jitter):
            return
        if not spec.enabled:
            timer.remove(name)
            return
        # The new schedule's ticks count from when it was stored (by the edit), at most from now.
        since = min(row.schedule_since or now, now)
        timer.add(
            name,
            spec.schedule,
            paused=paused,
            now=since - timedelta(seconds=spec.jitter),
            delay=spec.jitter_delay,
        )

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

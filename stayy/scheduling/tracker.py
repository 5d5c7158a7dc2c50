"""The runs this process is executing: heartbeats, cancellation and shutdown.

A run row says ``active`` while its handler executes. This process refreshes
the heartbeat of its active runs so that any leader can tell a live run from
one whose process died (and close the latter as "process lost"). A run whose
row a heartbeat finds closed by someone else is cancelled at once: it learns
within one heartbeat interval that it lost its claim.

A Python thread cannot be killed: a handler that ignores its cancellation past
its timeout and ``JOB_SHUTDOWN_GRACE`` makes the process leave
(:meth:`RunTracker.leave`; by default a SIGTERM to itself, so that gunicorn or
``runjobs`` stop gracefully and are replaced).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, close_old_connections, connections

from stayy.conf import stayy_settings
from stayy.repository import runs
from stayy.scheduling.context import JobContext

logger = logging.getLogger("stayy.jobs")


class RunTracker:
    """Process-wide registry of executing runs, with a lazy heartbeat thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[int, JobContext] = {}
        self._idle = threading.Condition(self._lock)
        self._heartbeat: threading.Thread | None = None
        #: Called with the reason when a hung handler makes this process leave.
        self.on_leave: Callable[[str], None] = _terminate_self
        #: Why this process was made to leave, if it was.
        self.left_because = ""

    def leave(self, reason: str) -> None:
        """Make this process leave: a handler ignored its cancellation past timeout and grace."""
        self.left_because = reason
        logger.critical("leaving the process: %s", reason)
        self.on_leave(reason)

    def register(self, run_id: int, ctx: JobContext) -> None:
        with self._lock:
            self._runs[run_id] = ctx
            if self._heartbeat is None or not self._heartbeat.is_alive():
                self._heartbeat = threading.Thread(target=self._beat, name="stayy-run-heartbeat", daemon=True)
                self._heartbeat.start()

    def unregister(self, run_id: int) -> None:
        with self._lock:
            self._runs.pop(run_id, None)
            self._idle.notify_all()

    def running(self) -> dict[int, JobContext]:
        with self._lock:
            return dict(self._runs)

    def cancel_all(self, reason: str) -> None:
        for ctx in self.running().values():
            ctx.cancel(reason)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no run executes here; ``False`` if some still do after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._runs:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _beat(self) -> None:
        while True:
            time.sleep(stayy_settings.heartbeat_interval)
            ids = list(self.running())
            if not ids:
                with self._lock:
                    if not self._runs:
                        self._heartbeat = None
                        connections.close_all()
                        return
                continue
            try:
                close_old_connections()
                self.beat_once(ids)
            except DatabaseError as exc:
                logger.warning("heartbeat of runs %s failed: %s", ids, exc)

    def beat_once(self, ids: list[int]) -> None:
        """Refresh the heartbeat of the runs ``ids``; cancel those whose row is no longer theirs."""
        owned = runs.heartbeat(ids)
        for run_id, ctx in self.running().items():
            if run_id in owned:
                ctx.confirm_alive()
            elif run_id in ids and not ctx.lost and not ctx.returned:  # a returned run closed its own row
                ctx.lose("its run row was closed by another process (it saw no heartbeat in time)")
                ctx.logger.warning("run %s lost its claim: cancelled", run_id)


def _terminate_self(_reason: str) -> None:
    os.kill(os.getpid(), signal.SIGTERM)


tracker = RunTracker()

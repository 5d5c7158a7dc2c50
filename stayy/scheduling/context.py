"""The job context handed to every handler, like Go's ``ctx``.

It carries the run's identity, its deadline, a cancellation flag (set on
timeout, shutdown, or when the run's row is no longer its own), a logger
bound to the run and a way to report progress. Handlers that loop over
batches call :meth:`JobContext.check` between them.

A run is *fenced*: once its process has gone ``stale_after`` seconds without
a confirmed heartbeat (stopped, frozen, or cut off from the database), any
other process may have closed its row and started the job again, so the
context counts as cancelled from then on, before the next heartbeat tells.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

logger = logging.getLogger("stayy.jobs")

ProgressCallback = Callable[[dict[str, Any]], None]


class JobCancelled(Exception):
    """Raised by :meth:`JobContext.check` once the run was cancelled (timeout or shutdown)."""


class JobSkipped(Exception):
    """Raised by a handler that cannot run now; the run is recorded as ``skipped`` with the message."""


class JobContext:
    """What a handler knows about its run and how it talks back."""

    def __init__(
        self,
        *,
        job_name: str,
        run_id: int | None,
        scheduled_for: datetime,
        trigger: str,
        timeout: float,
        attempt: int = 0,
        on_progress: ProgressCallback | None = None,
        stale_after: float | None = None,
    ) -> None:
        self.job_name = job_name
        self.run_id = run_id
        self.scheduled_for = scheduled_for
        self.trigger = trigger
        self.attempt = attempt  # 0, or 1..retries for a retry of the same tick
        self.timeout = timeout
        self.started_monotonic = time.monotonic()
        self.deadline = datetime.now(scheduled_for.tzinfo) + timedelta(seconds=timeout)
        self.summary: dict[str, Any] = {}
        self.logger = logging.LoggerAdapter(logger, {"job": job_name, "run_id": run_id})
        self._cancel = threading.Event()
        self._cancel_reason = ""
        self._on_progress = on_progress
        self._stale_after = stale_after
        self._confirmed_at = self.started_monotonic
        self.lost = False  # the run's row was closed by someone else
        self.returned = False  # the handler has returned (its end is being recorded)
        #: The handler saw its cancellation (``cancelled`` read true, ``sleep`` woke for it): if
        #: it then returns, it stopped before its work was done.
        self.cancel_seen = False

    # --- fencing ----------------------------------------------------------
    def confirm_alive(self) -> None:
        """The run's row was still its own a moment ago (a heartbeat updated it)."""
        self._confirmed_at = time.monotonic()

    def lose(self, reason: str) -> None:
        """The run's row is no longer its own: cancel the run for good."""
        self.lost = True
        self.cancel(f"lost: {reason}")

    def _check_fence(self) -> None:
        if self._stale_after is None or self._cancel.is_set():
            return
        unconfirmed = time.monotonic() - self._confirmed_at
        if unconfirmed > self._stale_after:
            self.lose(f"no heartbeat confirmed for {unconfirmed:.0f} s (process stopped, or database away)")

    # --- cancellation -----------------------------------------------------
    @property
    def cancelled(self) -> bool:
        self._check_fence()
        if self._cancel.is_set():
            self.cancel_seen = True
            return True
        return False

    @property
    def cancel_reason(self) -> str:
        return self._cancel_reason

    def cancel(self, reason: str) -> None:
        if not self._cancel.is_set():
            self._cancel_reason = reason
            self._cancel.set()

    def check(self) -> None:
        """Raise :class:`JobCancelled` if the run should stop; call it between batches."""
        if self.cancelled:
            raise JobCancelled(self._cancel_reason)

    def time_left(self) -> float:
        return self.timeout - (time.monotonic() - self.started_monotonic)

    def sleep(self, seconds: float) -> bool:
        """Sleep, waking early on cancellation; returns ``True`` if cancelled."""
        if self._cancel.wait(seconds):
            self.cancel_seen = True
        return self.cancelled

    # --- progress ---------------------------------------------------------
    def report_progress(self, values: Mapping[str, Any] | None = None, /, **counters: Any) -> None:
        """Merge counters into the run's summary (stored with the run and shown live)."""
        if values:
            self.summary.update(values)
        self.summary.update(counters)
        if self._on_progress is not None:
            self._on_progress(dict(self.summary))

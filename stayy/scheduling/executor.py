"""An APScheduler executor that hands each due tick, with its scheduled time, to the runner.

APScheduler's own executors call the job function without telling it when it
was due, refuse a tick when ``max_instances`` is reached without recording
it, and run jobs in a ``concurrent.futures`` pool that the interpreter joins
before ``atexit`` handlers can cancel them. This executor hands each tick to
the job server's :class:`~stayy.scheduling.tick_pool.TickPool` (an idle
long-lived thread, or a new one) and leaves skip/miss decisions to the
runner, which records every one of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job as APJob

from stayy.scheduling.tick_pool import TickPool

logger = logging.getLogger("stayy.jobs")

OnDue = Callable[[str, datetime], None]


class TickExecutor(BaseExecutor):
    """Calls ``on_due(job_id, scheduled_for)`` for the newest due time of a job, in a pool thread."""

    def __init__(self, on_due: OnDue, pool: TickPool) -> None:
        super().__init__()
        self._on_due = on_due
        self._pool = pool

    def _do_submit_job(self, job: APJob, run_times: list[datetime]) -> None:
        # Jobs are added with coalesce=True, so run_times holds the newest due
        # time; the runner records the ticks in between as missed.
        scheduled_for = run_times[-1]
        if not self._pool.submit(self._run, job.id, scheduled_for, name=f"stayy-job-{job.id}"):
            logger.debug("tick %s of %s not taken: the job server is stopping", scheduled_for, job.id)
            self._run_job_success(job.id, [])

    def _run(self, job_id: str, scheduled_for: datetime) -> None:
        try:
            self._on_due(job_id, scheduled_for)
        except Exception:
            logger.exception("tick %s of %s crashed in the runner", scheduled_for, job_id)
        finally:
            self._run_job_success(job_id, [])

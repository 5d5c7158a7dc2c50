"""An APScheduler executor that hands each due tick, with its scheduled time, to the runner.

APScheduler's own executors call the job function without telling it when it
was due, refuse a tick when ``max_instances`` is reached without recording
it, and run jobs in a ``concurrent.futures`` pool that the interpreter joins
before ``atexit`` handlers can cancel them. This executor runs each tick in
a daemon thread of its own and leaves skip/miss decisions to the runner,
which records every one of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job as APJob

from stayy.scheduling.threads import spawn

logger = logging.getLogger("stayy.jobs")

OnDue = Callable[[str, datetime], None]


class TickExecutor(BaseExecutor):
    """Calls ``on_due(job_id, scheduled_for)`` for the newest due time of a job, in a new thread."""

    def __init__(self, on_due: OnDue) -> None:
        super().__init__()
        self._on_due = on_due

    def _do_submit_job(self, job: APJob, run_times: list[datetime]) -> None:
        # Jobs are added with coalesce=True, so run_times holds the newest due
        # time; the runner records the ticks in between as missed.
        scheduled_for = run_times[-1]
        spawn(self._run, job.id, scheduled_for, name=f"stayy-job-{job.id}")

    def _run(self, job_id: str, scheduled_for: datetime) -> None:
        try:
            self._on_due(job_id, scheduled_for)
        except Exception:
            logger.exception("tick %s of %s crashed in the runner", scheduled_for, job_id)
        finally:
            self._run_job_success(job_id, [])

"""1-second jobs that do nothing, for the scheduler benchmarks: ten for benchmark 4, a hundred for 4b.

Declared disabled: only ``bench/scheduler.py`` and ``bench/many_jobs.py``
switch them on, through ``JOB_OVERRIDES`` (``{"bench.tick_0": {"enabled": true}, ...}``).
"""

from __future__ import annotations

from django.utils import timezone

from stayy.scheduling import JobContext, job

TICK_JOBS = [f"bench.tick_{index}" for index in range(10)]
MANY_JOBS = [f"bench.many_{index:03d}" for index in range(100)]


def _tick(ctx: JobContext) -> dict[str, str]:
    """Do nothing but note when the handler began: that and the run row's ``started_at`` (the
    claim), each against the scheduled time, are the measurements."""
    return {"handler_started": timezone.now().isoformat()}


for _name in [*TICK_JOBS, *MANY_JOBS]:
    job(_name, every=1, timeout=5, misfire_grace=5, enabled=False)(_tick)

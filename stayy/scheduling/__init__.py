"""The job framework: declarative job specs, triggers, the run context and the job server.

Apps declare jobs in their own ``jobs.py``::

    from stayy.scheduling import JobContext, job

    @job("users.refresh_user_stats", every=30, timeout=20)
    def refresh_user_stats(ctx: JobContext) -> dict[str, int]:
        return services.user_stats_refresh()
"""

from stayy.scheduling.context import JobCancelled, JobContext, JobSkipped
from stayy.scheduling.registry import job

__all__ = ["JobCancelled", "JobContext", "JobSkipped", "job"]

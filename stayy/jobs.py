"""Jobs of the Stayy runtime itself."""

from __future__ import annotations

from stayy import services
from stayy.scheduling import JobContext, job


@job("stayy.purge_job_runs", cron="17 3 * * *", timeout=600)
def purge_job_runs(ctx: JobContext) -> dict[str, int]:
    """Delete run history older than the retention (JOB_RUN_RETENTION_DAYS)."""
    deleted = services.job_runs_purge(should_stop=lambda: ctx.cancelled)
    return {"deleted": deleted}

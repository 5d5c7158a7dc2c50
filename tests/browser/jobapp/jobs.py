"""``testing.browser_ok`` succeeds at once; ``testing.browser_fail`` raises, so its run records a traceback.

Both are scheduled on 29 February only, so no scheduled tick adds a run while
a test counts them: they run when the test clicks "Run now" on the dashboard.
"""

from __future__ import annotations

from stayy.scheduling import JobContext, job
from tests.browser.jobapp import FAILURE_MESSAGE


@job("testing.browser_ok", cron="15 4 29 2 *", timeout=30)
def browser_ok(ctx: JobContext) -> dict[str, int]:
    """Succeed at once (browser tests only)."""
    ctx.report_progress(checked=1)
    return {"checked": 1}


def _call_upstream() -> None:
    raise ConnectionError(FAILURE_MESSAGE)


@job("testing.browser_fail", cron="0 3 29 2 *", timezone="Europe/Berlin", timeout=30)
def browser_fail(ctx: JobContext) -> None:
    """Fail with a traceback (browser tests only)."""
    _call_upstream()

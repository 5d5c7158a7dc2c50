"""The job context: cancellation, cooperative sleep, progress and a logger bound to the run."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import pytest

from stayy.scheduling import JobCancelled, JobContext


def make_context(**kwargs) -> JobContext:
    options = {
        "job_name": "tests.context_job",
        "run_id": 42,
        "scheduled_for": datetime(2025, 6, 1, 3, 0, tzinfo=UTC),
        "trigger": "schedule",
        "timeout": 30.0,
    }
    options.update(kwargs)
    return JobContext(**options)


def test_check_passes_until_cancelled_then_raises_with_the_reason():
    ctx = make_context()
    ctx.check()
    assert not ctx.cancelled
    ctx.cancel("shutdown")
    assert ctx.cancelled
    assert ctx.cancel_reason == "shutdown"
    with pytest.raises(JobCancelled, match="shutdown"):
        ctx.check()


def test_the_first_cancel_reason_wins():
    ctx = make_context()
    ctx.cancel("timed out after 1 s")
    ctx.cancel("shutdown")
    assert ctx.cancel_reason == "timed out after 1 s"


def test_sleep_runs_its_time_when_not_cancelled():
    ctx = make_context()
    started = time.monotonic()
    assert ctx.sleep(0.1) is False
    assert time.monotonic() - started >= 0.09


def test_sleep_wakes_early_on_cancel():
    ctx = make_context()
    timer = threading.Timer(0.1, ctx.cancel, args=("shutdown",))
    timer.start()
    started = time.monotonic()
    try:
        assert ctx.sleep(30) is True
    finally:
        timer.cancel()
    assert time.monotonic() - started < 10  # far less than the 30 s asked for


def test_deadline_and_time_left_follow_the_timeout():
    ctx = make_context(timeout=30.0)
    assert 29 < ctx.time_left() <= 30
    assert ctx.deadline.tzinfo is not None
    assert 29 < (ctx.deadline - datetime.now(UTC)).total_seconds() <= 30


def test_report_progress_merges_and_calls_back():
    seen: list[dict] = []
    ctx = make_context(on_progress=seen.append)
    ctx.report_progress({"fetched": 10}, pages=1)
    ctx.report_progress(fetched=20, updated=3)
    assert ctx.summary == {"fetched": 20, "pages": 1, "updated": 3}
    assert seen == [{"fetched": 10, "pages": 1}, {"fetched": 20, "pages": 1, "updated": 3}]
    seen[0]["fetched"] = -1  # the callback gets a copy
    assert ctx.summary["fetched"] == 20


def test_report_progress_without_callback():
    ctx = make_context()
    ctx.report_progress(done=1)
    assert ctx.summary == {"done": 1}


def test_logger_carries_job_and_run_id(caplog):
    ctx = make_context(job_name="tests.logging_job", run_id=7)
    with caplog.at_level(logging.INFO, logger="stayy.jobs"):
        ctx.logger.info("batch %d done", 3)
    (record,) = [r for r in caplog.records if r.getMessage() == "batch 3 done"]
    assert record.name == "stayy.jobs"
    assert record.job == "tests.logging_job"
    assert record.run_id == 7

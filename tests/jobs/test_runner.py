"""Run recording: outcomes, timeouts, per-tick claims, missed and skipped ticks, lost runs.

The runner closes and checks database connections around each run (as Django does
per request), which a test transaction does not survive, and its watchdog and
heartbeat run in threads of their own: these tests use transactional test cases.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from stayy.conf import stayy_settings
from stayy.models import Job, JobRun
from stayy.repository import runs
from stayy.scheduling import JobContext, JobSkipped, runner
from stayy.scheduling.tracker import tracker
from stayy.scheduling.triggers import fire_times
from tests.jobs.support import executing_row, grid_tick, run_manage, run_rows, subprocess_env, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

Status = JobRun.Status


def always_leader() -> bool:  # still_leader of a process that keeps its lease
    return True


class Calls:
    """A handler that counts its calls."""

    def __init__(self, result=None, delay: float = 0.0) -> None:
        self.count = 0
        self.result = result if result is not None else {"ok": 1}
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, ctx):
        with self.lock:
            self.count += 1
        if self.delay:
            time.sleep(self.delay)
        return self.result


def in_thread(target, *args):
    """Run ``target`` in a thread of its own (with its own database connection, closed at the end)."""
    results: list = []
    errors: list = []

    def run():
        try:
            results.append(target(*args))
        except BaseException as exc:  # the test asserts on results and shows these
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, results, errors


# --- execute(): outcomes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "database", [pytest.param("default"), pytest.param("sqlite", marks=pytest.mark.sqlite)]
)
def test_succeeded_with_summary_and_duration(make_job, database):
    def handler(ctx):
        ctx.report_progress(pages=2)
        time.sleep(0.05)
        return {"fetched": 3}

    spec = make_job("tests.ok_job", handler)
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    assert runner.execute(spec, run) == Status.SUCCEEDED
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    assert run.summary == {"pages": 2, "fetched": 3}
    assert run.error == "" and run.traceback == ""
    assert run.active is False
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert run.duration_ms is not None and 50 <= run.duration_ms < 10_000
    assert (run.host, run.pid) == (socket.gethostname(), os.getpid())


@pytest.mark.parametrize(
    "database", [pytest.param("default"), pytest.param("sqlite", marks=pytest.mark.sqlite)]
)
def test_handler_exception_is_failed_with_error_and_traceback(make_job, database):
    def exploding_handler(ctx):
        raise ValueError("upstream said no")

    spec = make_job("tests.failing_job", exploding_handler)
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    assert runner.execute(spec, run) == Status.FAILED
    run.refresh_from_db()
    assert run.status == Status.FAILED
    assert run.error == "ValueError: upstream said no"
    assert "Traceback (most recent call last)" in run.traceback
    assert "exploding_handler" in run.traceback
    assert run.active is False and run.finished_at is not None and run.duration_ms is not None


def test_job_skipped_is_recorded_with_the_reason(make_job):
    def handler(ctx):
        raise JobSkipped("upstream in maintenance")

    spec = make_job("tests.skipping_job", handler)
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    assert runner.execute(spec, run) == Status.SKIPPED
    run.refresh_from_db()
    assert (run.status, run.error, run.active) == (Status.SKIPPED, "upstream in maintenance", False)


def test_progress_is_stored_while_the_run_executes(make_job):
    reported, release = threading.Event(), threading.Event()

    def handler(ctx):
        ctx.report_progress(done=5)
        reported.set()
        release.wait(30)
        return {"done": 10}

    spec = make_job("tests.progress_job", handler)
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    thread, results, errors = in_thread(runner.execute, spec, run)
    try:
        wait_until(
            lambda: JobRun.objects.get(pk=run.pk).summary == {"done": 5},
            timeout=10,
            message="no live progress",
        )
        assert JobRun.objects.get(pk=run.pk).status == Status.RUNNING
    finally:
        release.set()
        thread.join(10)
    assert results == [Status.SUCCEEDED], errors
    assert JobRun.objects.get(pk=run.pk).summary == {"done": 10}


# --- timeouts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "database", [pytest.param("default"), pytest.param("sqlite", marks=pytest.mark.sqlite)]
)
def test_timeout_marks_the_run_at_the_deadline_and_keeps_it_active_until_the_handler_returns(
    make_job, database
):
    release, cancelled = threading.Event(), threading.Event()

    def slow(ctx):
        while not ctx.cancelled:
            ctx.sleep(0.05)
        cancelled.set()
        release.wait(30)  # takes its time to return after the cancellation
        return {"stopped": ctx.cancel_reason}

    spec = make_job("tests.slow_job", slow, every=60, timeout=0.5, misfire_grace=3600)
    tick = grid_tick(60)
    run = runs.claim_tick(job_name=spec.name, scheduled_for=tick - timedelta(seconds=60))
    started = time.monotonic()
    thread, results, errors = in_thread(runner.execute, spec, run)
    try:
        row = wait_until(
            lambda: JobRun.objects.filter(pk=run.pk, status=Status.TIMED_OUT).first(),
            timeout=10,
            interval=0.02,
            message="run never recorded as timed out",
        )
        elapsed = time.monotonic() - started
        assert 0.45 <= elapsed < 5, elapsed
        assert 500 <= row.duration_ms < 5000
        assert row.error == "timed out after 0.5 s; cancellation requested"
        assert row.finished_at is not None
        assert row.active is True, "the handler still executes"
        assert cancelled.wait(5), "the handler was not told to stop"

        # The next tick sees the handler still executing and records why it does not run.
        runner.run_tick(spec, tick, still_leader=always_leader)
        skipped = JobRun.objects.get(job_name=spec.name, scheduled_for=tick)
        assert skipped.status == Status.SKIPPED
        assert "previous run timed out and has not returned" in skipped.error
        assert f"run {run.pk}" in skipped.error
        assert JobRun.objects.get(pk=run.pk).active is True
    finally:
        release.set()
        thread.join(10)
    assert results == [Status.TIMED_OUT], errors
    row = JobRun.objects.get(pk=run.pk)
    assert (row.status, row.active) == (Status.TIMED_OUT, False)
    assert row.error == "timed out after 0.5 s; cancellation requested"
    assert row.summary == {"stopped": "timed out after 0.5 s"}


def test_a_handler_that_returns_on_cancel_is_timed_out(make_job):
    def cooperative(ctx):
        while True:
            ctx.sleep(0.05)
            ctx.check()

    spec = make_job("tests.cooperative_job", cooperative, timeout=0.3)
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    assert runner.execute(spec, run) == Status.TIMED_OUT
    row = JobRun.objects.get(pk=run.pk)
    assert (row.status, row.active) == (Status.TIMED_OUT, False)
    assert "timed out after 0.3 s" in row.error


# --- run_tick(): claims --------------------------------------------------------------


def test_a_tick_runs_once_when_run_twice(make_job):
    handler = Calls()
    spec = make_job("tests.ok_job", handler, every=60, misfire_grace=3600)
    tick = grid_tick(60)
    runner.run_tick(spec, tick, still_leader=always_leader)
    runner.run_tick(spec, tick, still_leader=always_leader)
    assert handler.count == 1
    (row,) = run_rows(job_name=spec.name)
    assert (row.scheduled_for, row.status, row.trigger) == (tick, Status.SUCCEEDED, JobRun.Trigger.SCHEDULE)


def claim_race(make_job):
    handler = Calls(delay=0.3)
    spec = make_job("tests.raced_job", handler, every=60, misfire_grace=3600)
    tick = grid_tick(60)
    barrier = threading.Barrier(3)

    def contender():
        barrier.wait(10)
        runner.run_tick(spec, tick, still_leader=always_leader)

    threads = [in_thread(contender)[0] for _ in range(3)]
    for thread in threads:
        thread.join(20)
    assert handler.count == 1
    rows = run_rows(job_name=spec.name)
    assert [(r.scheduled_for, r.status) for r in rows] == [(tick, Status.SUCCEEDED)]


def test_concurrent_claims_of_one_tick_execute_it_once(make_job):
    claim_race(make_job)


@pytest.mark.sqlite
def test_concurrent_claims_of_one_tick_execute_it_once_on_sqlite(make_job):
    claim_race(make_job)


@pytest.mark.parametrize("late", [False, True], ids=["on time", "past the misfire grace"])
def test_not_leader_means_no_row_and_no_execution(make_job, late):
    handler = Calls()
    spec = make_job("tests.ok_job", handler, misfire_grace=5 if late else 3600)
    tick = grid_tick(60) - timedelta(seconds=120 if late else 0)
    runner.run_tick(spec, tick, still_leader=lambda: False)
    assert handler.count == 0
    assert run_rows(job_name=spec.name) == []


# --- run_tick(): ticks that do not run -------------------------------------------------


def catch_up(spec, *, now) -> None:
    """What a new leader does for ``spec`` at ``now``: run the newest owed tick, the rest missed."""
    owed = runner.owed_ticks(spec, now=now)
    runner.run_tick(spec, owed[-1], missed_before=owed[:-1], still_leader=always_leader)


def test_missed_ticks_since_the_schedule_started_are_recorded(make_job):
    handler = Calls()
    spec = make_job("tests.ticking_job", handler, every=10, misfire_grace=3600)
    tick = grid_tick(10)
    since = tick - timedelta(seconds=65)
    Job.objects.filter(name=spec.name).update(schedule_since=since)
    catch_up(spec, now=tick)

    expected = [t for t in fire_times(spec.schedule, after=since, until=tick, limit=100) if t < tick]
    assert expected == [tick - timedelta(seconds=s) for s in (60, 50, 40, 30, 20, 10)]
    rows = run_rows(job_name=spec.name)
    assert [(r.scheduled_for, r.status) for r in rows] == [
        *((t, Status.MISSED) for t in expected),
        (tick, Status.SUCCEEDED),
    ]
    assert all("no scheduler ran this tick" in r.error for r in rows[:-1])
    assert handler.count == 1


def test_missed_ticks_are_counted_from_the_last_recorded_tick(make_job):
    spec = make_job("tests.ticking_job", Calls(), every=10, misfire_grace=3600)
    tick = grid_tick(10)
    Job.objects.filter(name=spec.name).update(schedule_since=tick - timedelta(seconds=300))
    last = runs.claim_tick(job_name=spec.name, scheduled_for=tick - timedelta(seconds=30))
    runs.finish(last, status=Status.SUCCEEDED, summary={})
    catch_up(spec, now=tick)
    rows = run_rows(job_name=spec.name)
    assert [(tick - r.scheduled_for, r.status) for r in rows] == [
        (timedelta(seconds=30), Status.SUCCEEDED),
        (timedelta(seconds=20), Status.MISSED),
        (timedelta(seconds=10), Status.MISSED),
        (timedelta(0), Status.SUCCEEDED),
    ]


def test_a_tick_later_than_the_misfire_grace_is_missed(make_job):
    handler = Calls()
    spec = make_job("tests.strict_job", handler, every=10, misfire_grace=1)
    late_tick = grid_tick(10) - timedelta(seconds=10)
    runner.run_tick(spec, late_tick, still_leader=always_leader)
    assert handler.count == 0
    (row,) = run_rows(job_name=spec.name)
    assert row.status == Status.MISSED
    assert row.scheduled_for == late_tick
    assert "s late, past the misfire grace of 1 s" in row.error
    assert row.active is False


def test_overlap_is_skipped_with_the_reason(make_job):
    handler = Calls()
    spec = make_job("tests.busy_job", handler, misfire_grace=3600)
    now = timezone.now()
    other = JobRun.objects.create(
        job_name=spec.name,
        scheduled_for=now - timedelta(seconds=5),
        trigger=JobRun.Trigger.MANUAL,
        status=Status.RUNNING,
        active=True,
        started_at=now - timedelta(seconds=5),
        heartbeat_at=now,
        host="other-host",
        pid=4242,
    )
    tick = grid_tick(60)
    runner.run_tick(spec, tick, still_leader=always_leader)
    assert handler.count == 0
    row = JobRun.objects.get(job_name=spec.name, scheduled_for=tick)
    assert row.status == Status.SKIPPED
    assert row.error == f"previous run still running (run {other.pk} on other-host:4242)"
    other.refresh_from_db()
    assert (other.status, other.active) == (Status.RUNNING, True)


def test_a_run_of_a_lost_process_holds_the_job_until_it_is_reaped(make_job):
    """A run whose process stopped heartbeating may only be stopped (SIGSTOP, a VM freeze): the
    tick is skipped until the reaper closes it as lost, and then the next tick runs."""
    handler = Calls()
    spec = make_job("tests.reaped_job", handler, misfire_grace=3600)
    long_ago = timezone.now() - timedelta(hours=1)
    lost = JobRun.objects.create(
        job_name=spec.name,
        scheduled_for=long_ago,
        trigger=JobRun.Trigger.MANUAL,
        status=Status.RUNNING,
        active=True,
        started_at=long_ago,
        heartbeat_at=long_ago,
        host="dead-host",
        pid=999999,
    )
    tick = grid_tick(60)
    runner.run_tick(spec, tick - timedelta(seconds=60), still_leader=always_leader)
    assert handler.count == 0
    skipped = JobRun.objects.get(job_name=spec.name, scheduled_for=tick - timedelta(seconds=60))
    assert (skipped.status, skipped.error) == (
        Status.SKIPPED,
        f"previous run still running (run {lost.pk} on dead-host:999999)",
    )

    assert len(runs.reap_lost(stale_after=60)) == 1
    lost.refresh_from_db()
    assert lost.status == Status.FAILED
    assert lost.active is False
    assert lost.error == "process lost: dead-host:999999 stopped heartbeating"
    assert lost.finished_at is not None

    runner.run_tick(spec, tick, still_leader=always_leader)
    assert handler.count == 1
    assert JobRun.objects.get(job_name=spec.name, scheduled_for=tick).status == Status.SUCCEEDED


def test_the_reaper_leaves_runs_it_is_told_to_keep_and_fresh_ones(make_job):
    make_job("tests.kept_job")
    make_job("tests.fresh_job")

    kept = executing_row("tests.kept_job", heartbeat_age=300, host=runs.HOST, pid=os.getpid())
    fresh = executing_row("tests.fresh_job", host=runs.HOST, pid=os.getpid())
    assert runs.reap_lost(stale_after=60, keep={kept.pk}) == []
    assert JobRun.objects.filter(pk__in=[kept.pk, fresh.pk], active=True).count() == 2
    assert len(runs.reap_lost(stale_after=60)) == 1
    assert JobRun.objects.get(pk=kept.pk).status == Status.FAILED


def test_a_live_run_keeps_its_heartbeat_and_is_not_reaped(make_job, settings):
    settings.STAYY = {**settings.STAYY, "RUN_STALE_AFTER": 3.0}  # heartbeat every second
    release = threading.Event()

    def long_handler(ctx):
        release.wait(30)

    spec = make_job("tests.long_job", long_handler, every=60, misfire_grace=3600)
    tick = grid_tick(60)
    run = runs.claim_tick(job_name=spec.name, scheduled_for=tick - timedelta(seconds=60))
    thread, results, errors = in_thread(runner.execute, spec, run)
    try:

        def older_than_stale_and_fresh():
            row = JobRun.objects.get(pk=run.pk)
            now = timezone.now()
            old = (now - row.started_at).total_seconds() > 3.5
            return old and (now - row.heartbeat_at).total_seconds() < 2.0

        wait_until(older_than_stale_and_fresh, timeout=15, message="no heartbeat while the run executes")
        runner.run_tick(spec, tick, still_leader=always_leader)
        row = JobRun.objects.get(pk=run.pk)
        assert (row.status, row.active) == (Status.RUNNING, True)
        skipped = JobRun.objects.get(job_name=spec.name, scheduled_for=tick)
        assert skipped.status == Status.SKIPPED
        assert "previous run still running" in skipped.error
    finally:
        release.set()
        thread.join(10)
    assert results == [Status.SUCCEEDED], errors


def test_a_summary_that_is_not_json_does_not_leave_the_run_running(make_job):
    """A handler may return values JSON cannot store (a datetime cursor); the run must still be closed."""

    def handler(ctx):
        return {"synced_until": timezone.now()}

    spec = make_job("tests.cursor_job", handler)
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    try:
        outcome = runner.execute(spec, run)
    except Exception as exc:  # the assertion below reports it
        outcome = f"raised {type(exc).__name__}: {exc}"
    row = JobRun.objects.get(pk=run.pk)
    assert (row.status, row.active) != (Status.RUNNING, True), (
        f"execute() -> {outcome}; the run row stays running/active until it is reaped as 'process lost'"
    )
    assert outcome in (Status.SUCCEEDED, Status.FAILED)


# --- catalog and catch-up bounds ---------------------------------------------------------


def test_a_changed_schedule_is_not_owed_ticks_of_the_old_one(make_job):
    from stayy.repository import catalog
    from stayy.scheduling import registry

    spec = make_job("tests.retimed_job", every=60)
    Job.objects.filter(name=spec.name).update(schedule_since=timezone.now() - timedelta(hours=1))
    registry.apply_overrides({spec.name: {"interval": 30}})
    before = timezone.now()
    row = catalog.sync_from_specs([registry.get(spec.name)])[spec.name]
    assert row.trigger == "interval:30" and row.schedule == "every 30 seconds"
    assert row.schedule_since >= before
    unchanged = catalog.sync_from_specs([registry.get(spec.name)])[spec.name]
    assert unchanged.schedule_since == row.schedule_since


def test_missed_ticks_are_bounded_by_the_catchup_window(make_job, settings):
    settings.STAYY = {**settings.STAYY, "CATCHUP_WINDOW": 30.0}
    spec = make_job("tests.ticking_job", Calls(), every=10, misfire_grace=3600)
    tick = grid_tick(10)
    Job.objects.filter(name=spec.name).update(schedule_since=tick - timedelta(hours=2))
    catch_up(spec, now=tick)
    missed = run_rows(job_name=spec.name, status=Status.MISSED)
    assert 2 <= len(missed) <= 3
    assert all(timezone.now() - r.scheduled_for <= timedelta(seconds=40) for r in missed)


# --- per-run logs ------------------------------------------------------------------------

service_logger = logging.getLogger("tests.jobs.service")


def test_lines_any_logger_writes_in_the_run_are_stored_with_it(make_job):
    handler_running, elsewhere_logged = threading.Event(), threading.Event()

    def handler(ctx):
        ctx.logger.info("fetching page %d", 1)
        service_logger.info("service line")
        logging.getLogger("httpx").warning("library line")
        handler_running.set()
        assert elsewhere_logged.wait(10)
        return {"pages": 1}

    def elsewhere():
        assert handler_running.wait(10)
        service_logger.info("written by another thread meanwhile")
        elsewhere_logged.set()

    spec = make_job("tests.logging_job", handler)
    other = threading.Thread(target=elsewhere)
    other.start()
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    assert runner.execute(spec, run) == Status.SUCCEEDED
    other.join(10)
    service_logger.info("written after the run")

    lines = JobRun.objects.get(pk=run.pk).log.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        f"INFO stayy.jobs: run started (command, scheduled for {run.scheduled_for.isoformat()})",
        "INFO stayy.jobs: fetching page 1",
        "INFO tests.jobs.service: service line",
        "WARNING httpx: library line",
    ]
    # Each line starts with its UTC time.
    assert all(line.split(" ", 1)[0].endswith("+00:00") for line in lines)


def test_a_failed_run_keeps_its_log_and_what_it_logged_about_the_error(make_job):
    def handler(ctx):
        service_logger.info("about to fail")
        try:
            {}["id"]
        except KeyError:
            service_logger.exception("lookup failed")
            raise

    spec = make_job("tests.failing_logging_job", handler)
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    assert runner.execute(spec, run) == Status.FAILED
    row = JobRun.objects.get(pk=run.pk)
    assert "INFO tests.jobs.service: about to fail" in row.log
    assert "ERROR tests.jobs.service: lookup failed\nTraceback (most recent call last):" in row.log
    assert row.error == "KeyError: 'id'" and "KeyError" in row.traceback


def test_a_timed_out_run_stores_its_log_at_the_deadline_and_again_when_it_returns(make_job):
    release = threading.Event()

    def slow(ctx):
        service_logger.info("first batch")
        while not ctx.cancelled:
            ctx.sleep(0.05)
        release.wait(30)
        service_logger.info("stopped after the cancellation")

    spec = make_job("tests.slow_logging_job", slow, timeout=0.5)
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    thread, results, errors = in_thread(runner.execute, spec, run)
    try:
        row = wait_until(
            lambda: JobRun.objects.filter(pk=run.pk, status=Status.TIMED_OUT).first(),
            timeout=10,
            message="run never recorded as timed out",
        )
        assert "INFO tests.jobs.service: first batch" in row.log
        assert row.log.rstrip().endswith(
            "WARNING stayy.jobs: run timed out after 0.5 s; cancellation requested"
        )
        assert "stopped after the cancellation" not in row.log
    finally:
        release.set()
        thread.join(10)
    assert results == [Status.TIMED_OUT], errors
    log = JobRun.objects.get(pk=run.pk).log
    assert log.index("first batch") < log.index("run timed out") < log.index("stopped after the cancellation")


def test_a_cancelled_run_keeps_its_log(make_job):
    started = threading.Event()

    def handler(ctx):
        service_logger.info("batch 1 done")
        started.set()
        while True:
            ctx.sleep(0.05)
            ctx.check()

    spec = make_job("tests.cancelled_logging_job", handler, timeout=60)
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    thread, results, errors = in_thread(runner.execute, spec, run)
    assert started.wait(10)
    tracker.cancel_all("shutting down")
    thread.join(10)
    assert results == [Status.FAILED], errors
    row = JobRun.objects.get(pk=run.pk)
    assert row.error == "cancelled: shutting down"
    assert "INFO tests.jobs.service: batch 1 done" in row.log


def test_runs_executing_at_the_same_time_get_only_their_own_lines(make_job):
    barrier = threading.Barrier(2)

    def handler(ctx):
        barrier.wait(10)
        for i in range(50):
            service_logger.info("%s line %d", ctx.job_name, i)
            if i % 10 == 0:
                time.sleep(0.001)  # let the other run write in between
        barrier.wait(10)

    specs = [make_job(f"tests.concurrent_logging_{n}", handler) for n in (1, 2)]
    started = [runs.create_started(job_name=s.name, trigger=JobRun.Trigger.COMMAND) for s in specs]
    threads = [in_thread(runner.execute, s, r) for s, r in zip(specs, started, strict=True)]
    for thread, results, errors in threads:
        thread.join(20)
        assert results == [Status.SUCCEEDED], errors
    for spec, run in zip(specs, started, strict=True):
        lines = [
            line for line in JobRun.objects.get(pk=run.pk).log.splitlines() if "tests.jobs.service" in line
        ]
        assert [line.split(": ", 1)[1] for line in lines] == [f"{spec.name} line {i}" for i in range(50)]


@pytest.mark.sqlite
def test_the_log_is_stored_on_sqlite_too(make_job):
    def handler(ctx):
        service_logger.warning("nul \x00 and non-ASCII: Grüße")
        raise RuntimeError("boom")

    spec = make_job("tests.sqlite_logging_job", handler)
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    assert runner.execute(spec, run) == Status.FAILED
    assert connection.vendor == "sqlite"
    assert "WARNING tests.jobs.service: nul \ufffd and non-ASCII: Grüße" in JobRun.objects.get(pk=run.pk).log


def test_a_nul_character_in_a_line_does_not_lose_the_log_on_postgresql(make_job):
    def handler(ctx):
        service_logger.warning("binary \x00 payload")

    spec = make_job("tests.nul_logging_job", handler)
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    assert runner.execute(spec, run) == Status.SUCCEEDED
    assert "binary \ufffd payload" in JobRun.objects.get(pk=run.pk).log


def test_the_log_of_a_run_is_capped_keeping_its_start(make_job, settings):
    settings.STAYY = {**settings.STAYY, "RUN_LOG_MAX_BYTES": 2048}

    def chatty(ctx):
        for i in range(100):
            service_logger.info("line %03d %s", i, "x" * 80)

    spec = make_job("tests.chatty_job", chatty)
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    assert runner.execute(spec, run) == Status.SUCCEEDED
    log = JobRun.objects.get(pk=run.pk).log
    assert len(log.encode()) <= 2048
    assert "run started" in log.splitlines()[0]
    assert "line 000" in log and "line 099" not in log
    note = log.splitlines()[-1]
    assert note.startswith("[log capped at 2048 bytes (JOB_RUN_LOG_MAX_BYTES): ")
    assert "more bytes dropped" in note


@pytest.mark.parametrize(
    ("value", "problem"),
    [("100", "must be at least 1024; got 100"), ("64k", "expected a whole number; got '64k'")],
)
def test_a_bad_run_log_cap_stops_startup_with_one_line(value, problem):
    result = run_manage("check", env=subprocess_env(JOB_RUN_LOG_MAX_BYTES=value))
    assert result.returncode == 2
    assert result.stderr.strip() == f"stayy: invalid setting JOB_RUN_LOG_MAX_BYTES: {problem}"


# --- fencing: a run whose row is no longer its own -------------------------------------


def test_a_run_whose_row_was_closed_elsewhere_is_cancelled_within_a_heartbeat_and_its_record_kept(
    make_job, settings
):
    settings.STAYY = {**settings.STAYY, "RUN_STALE_AFTER": 5.0}  # heartbeats every second
    closed = threading.Event()
    seen: dict[str, float] = {}

    def handler(ctx):
        closed.wait(10)
        started = time.monotonic()
        while not ctx.cancelled and time.monotonic() - started < 10:
            time.sleep(0.05)
        seen["after"] = time.monotonic() - started
        ctx.report_progress(steps=3)
        ctx.check()

    spec = make_job("tests.fenced_job", handler)
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    thread, results, errors = in_thread(runner.execute, spec, run)
    # Another process's reaper closes the run while its handler still executes.
    wait_until(lambda: run.pk in tracker.running(), timeout=5)
    JobRun.objects.filter(pk=run.pk).update(
        status=Status.FAILED, active=False, error="process lost: here:1 stopped heartbeating"
    )
    closed.set()
    thread.join(timeout=15)
    assert not errors, errors
    # Within a heartbeat interval plus its round trip; a generous bound for a loaded machine, far
    # below the 10 s the handler would spin if no heartbeat told it.
    assert seen["after"] < stayy_settings.heartbeat_interval + 4.0, (
        f"cancelled {seen['after']:.1f} s after the close"
    )
    assert results == [Status.FAILED]
    row = JobRun.objects.get(pk=run.pk)
    assert row.status == Status.FAILED
    first, note = row.error.split("\n")
    assert first == "process lost: here:1 stopped heartbeating"
    assert note.startswith("its process resumed; the handler returned ")
    assert "cancelled: lost: its run row was closed by another process" in note
    assert '{"steps": 3}' in note
    assert row.summary == {}, "the late end overwrote the record"


def test_a_handler_that_stops_when_cancelled_and_returns_is_not_recorded_succeeded(make_job):
    def handler(ctx):
        ctx.cancel("shutdown")
        done = 0
        while not ctx.cancelled:
            done += 1
        return {"done": done}

    spec = make_job("tests.returns_cancelled_job", handler)
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    assert runner.execute(spec, run) == Status.FAILED
    row = JobRun.objects.get(pk=run.pk)
    assert (row.status, row.error, row.summary) == (Status.FAILED, "cancelled: shutdown", {"done": 0})


def test_a_handler_that_finishes_its_work_without_looking_at_a_cancel_succeeds(make_job):
    """A cancel the handler never saw did not stop it: it did its work."""

    def handler(ctx):
        ctx.cancel("shutdown")
        return {"done": 1}

    spec = make_job("tests.ignores_cancel_job", handler)
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    assert runner.execute(spec, run) == Status.SUCCEEDED


def test_a_run_that_closed_its_own_row_is_not_taken_for_a_lost_one(make_job):
    """Between a run's end and its leaving the tracker, a heartbeat finds its row closed: by itself."""
    spec = make_job("tests.ending_job")
    finished = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    closed_elsewhere = runs.create_started(job_name="tests.other_job", trigger=JobRun.Trigger.COMMAND)
    contexts = {}
    for run in (finished, closed_elsewhere):
        ctx = JobContext(
            job_name=run.job_name,
            run_id=run.pk,
            scheduled_for=run.scheduled_for,
            trigger="command",
            timeout=60,
        )
        contexts[run.pk] = ctx
        tracker.register(run.pk, ctx)
    try:
        contexts[finished.pk].returned = True
        runs.finish(finished, status=Status.SUCCEEDED, summary={})
        JobRun.objects.filter(pk=closed_elsewhere.pk).update(active=False, status=Status.FAILED)
        tracker.beat_once(list(contexts))
        assert not contexts[finished.pk].cancelled
        assert contexts[closed_elsewhere.pk].lost and contexts[closed_elsewhere.pk].cancelled
    finally:
        for run_id in contexts:
            tracker.unregister(run_id)

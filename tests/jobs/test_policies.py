"""Job policies: overlap "queue", retries with backoff, atomic runs and jitter.

Each is an option of ``@job`` and of ``JOB_OVERRIDES`` (a bad value names the
job and the option), shown in the catalog, and acts on real runs here.
"""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from config.env import ConfigError
from stayy import services
from stayy.models import Job, JobRun
from stayy.repository import runs
from stayy.scheduling import registry, runner
from tests.jobs.support import child_database_url, executing_row, grid_tick, run_rows, wait_until
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)

Status = JobRun.Status
JOB = "tests.policy_job"
BOTH = pytest.mark.parametrize(
    "database", [pytest.param("postgresql"), pytest.param("sqlite", marks=pytest.mark.sqlite)]
)


def noop(ctx):
    return None


# --- the options -------------------------------------------------------------------------


def test_policies_are_options_of_the_declaration_the_overrides_and_the_catalog(make_job):
    def policies(of) -> tuple:
        return (of.overlap, of.retries, of.retry_backoff, of.atomic, of.jitter)

    spec = make_job(JOB, overlap="queue", retries=2, retry_backoff=5, atomic=True, jitter=3)
    assert policies(spec) == ("queue", 2, 5.0, True, 3.0)
    assert policies(Job.objects.get(name=JOB)) == ("queue", 2, 5.0, True, 3.0)

    overrides = {"overlap": "skip", "retries": 0, "retry_backoff": 1, "atomic": False, "jitter": 0}
    registry.apply_overrides({JOB: overrides})
    assert policies(registry.get(JOB)) == ("skip", 0, 1.0, False, 0.0)
    assert policies(make_job("tests.plain_job")) == ("skip", 0, 10.0, False, 0.0)


BAD_POLICIES = [
    ("overlap", "wait", "overlap must be 'skip' or 'queue', got 'wait'"),
    ("retries", -1, "retries must be a whole number from 0 to 100, got -1"),
    ("retries", 1.5, "retries must be a whole number from 0 to 100, got 1.5"),
    ("retries", True, "retries must be a whole number from 0 to 100, got True"),
    ("retry_backoff", 0, "retry_backoff must be a positive number of seconds, got 0"),
    ("atomic", "yes", "atomic must be true or false, got 'yes'"),
    ("jitter", -1, "jitter must be 0 or a positive number of seconds, got -1"),
    ("jitter", float("inf"), "jitter must be 0 or a positive number of seconds, got inf"),
]


@pytest.mark.parametrize(("option", "value", "words"), BAD_POLICIES)
def test_a_bad_policy_names_the_job_and_the_option(make_job, option, value, words):
    with pytest.raises(ValueError) as declared:
        registry.job("tests.bad_job", every=60, **{option: value})(noop)
    assert str(declared.value) == f"job 'tests.bad_job': {words}"
    make_job(JOB)
    with pytest.raises(ConfigError) as error:
        registry.apply_overrides({JOB: {option: value}})
    assert str(error.value) == f"invalid setting JOB_OVERRIDES: job '{JOB}': {words}"


def test_jitter_is_the_same_in_every_process_and_within_its_bound(make_job):
    spec = make_job(JOB, every=1, jitter=2.5)
    tick = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    delays = [spec.jitter_delay(tick + timedelta(seconds=n)) for n in range(200)]
    assert delays == [spec.jitter_delay(tick + timedelta(seconds=n)) for n in range(200)]
    assert all(timedelta(0) <= d < timedelta(seconds=2.5) for d in delays)
    assert len(set(delays)) > 150, "not spread"
    # Derived from the job's name and the tick only: a known value, the same on any host.
    assert spec.jitter_delay(tick) == registry.JobSpec(
        name=JOB, handler=noop, schedule=spec.schedule, timeout=1, misfire_grace=1, jitter=2.5
    ).jitter_delay(tick)
    assert make_job("tests.other_job", every=1).jitter_delay(tick) == timedelta(0)


# --- overlap "queue" -----------------------------------------------------------------------


@BOTH
def test_a_tick_that_finds_the_job_running_waits_once_and_later_ones_are_skipped(make_job, database):
    spec = make_job(JOB, every=60, overlap="queue", misfire_grace=3600)
    other = executing_row(JOB)
    tick = grid_tick(60)
    runner.run_tick(spec, tick - timedelta(seconds=60), still_leader=lambda: True)
    runner.run_tick(spec, tick, still_leader=lambda: True)
    waiting, skipped = run_rows(job_name=JOB, trigger=JobRun.Trigger.SCHEDULE)
    assert (waiting.scheduled_for, waiting.status) == (tick - timedelta(seconds=60), Status.QUEUED)
    assert (skipped.scheduled_for, skipped.status) == (tick, Status.SKIPPED)
    assert skipped.error == f"a tick already waits for the running one (run {waiting.pk})"
    # The waiting tick keeps waiting while the job runs, then starts.
    with pytest.raises(runs.JobExecuting):
        runs.claim_queued(waiting.pk, job_name=JOB)
    JobRun.objects.filter(pk=other.pk).update(active=False, status=Status.SUCCEEDED)
    assert runs.claim_queued(waiting.pk, job_name=JOB)


def test_with_overlap_queue_the_leader_starts_the_waiting_tick_when_the_run_ends(
    make_job, overrides, start_server
):
    ends: list[tuple[float, float]] = []

    def slow(ctx):
        started = time.time()
        time.sleep(1.6)
        ends.append((started, time.time()))

    make_job(JOB, slow, every=3600, overlap="queue", sync=False)
    overrides({JOB: {"interval": 1}})
    start_server()
    wait_until(lambda: len(ends) >= 3, timeout=15, message="the job did not run three times")
    rows = run_rows(job_name=JOB, trigger=JobRun.Trigger.SCHEDULE)
    ran = sorted((r for r in rows if r.status == Status.SUCCEEDED), key=lambda r: r.started_at)
    skipped = [r for r in rows if r.status == Status.SKIPPED]
    # Never two at once; a waiting tick starts right after the run before it ends.
    for (_, end), (start, _) in itertools.pairwise(ends):
        assert start >= end, "two runs overlapped"
        assert start - end < 1.5, f"the waiting tick started {start - end:.2f} s after the run ended"
    assert any(r.started_at - r.scheduled_for > timedelta(seconds=0.5) for r in ran), "no tick waited"
    assert skipped and all(r.error.startswith("a tick already waits for the running one") for r in skipped)


# --- retries -------------------------------------------------------------------------------


def test_a_failing_run_is_retried_with_growing_waits_up_to_its_retries(
    make_job, overrides, start_server, staff_client
):
    calls: list[tuple[str, int, float]] = []

    def failing(ctx):
        calls.append((ctx.trigger, ctx.attempt, time.monotonic()))
        raise RuntimeError("upstream said no")

    make_job(JOB, failing, every=3600, retries=2, retry_backoff=0.3, sync=False)
    overrides({})
    start_server()
    first = services.job_request_run(name=JOB, requested_by="tester")
    wait_until(lambda: len(calls) >= 3, timeout=15, message=f"retries did not run: {calls}")
    time.sleep(2.0)  # no fourth attempt
    assert [(trigger, attempt) for trigger, attempt, _ in calls] == [
        ("manual", 0),
        ("retry", 1),
        ("retry", 2),
    ]
    assert calls[1][2] - calls[0][2] >= 0.3 and calls[2][2] - calls[1][2] >= 0.6, "backoff did not double"
    rows = JobRun.objects.filter(job_name=JOB).order_by("attempt")
    assert [(r.trigger, r.attempt, r.status) for r in rows] == [
        ("manual", 0, "failed"),
        ("retry", 1, "failed"),
        ("retry", 2, "failed"),
    ]
    assert rows[1].retry_of_id == first.pk and rows[2].retry_of_id == rows[1].pk
    assert rows[1].scheduled_for == first.scheduled_for, "a retry is of the same tick"
    # The API shows them, linked.
    listed = staff_client.get(f"/api/jobs/{JOB}/runs/").json()["results"]
    shown = {(r["trigger"], r["attempt"], r["retry_of"]) for r in listed}
    assert shown == {("manual", 0, None), ("retry", 1, first.pk), ("retry", 2, rows[1].pk)}


def test_a_lost_run_is_retried_once_the_reaper_closed_it(make_job, overrides, start_server, settings):
    settings.STAYY = {**settings.STAYY, "RUN_STALE_AFTER": 3.0}
    done = threading.Event()
    make_job(JOB, lambda ctx: done.set(), every=3600, retries=1, retry_backoff=0.1, sync=False)
    overrides({})
    lost = executing_row(JOB, heartbeat_age=3600)
    start_server()
    assert done.wait(3.0 + 10), "the lost run was not retried"
    retry = wait_until(
        lambda: JobRun.objects.filter(retry_of=lost.pk, status=Status.SUCCEEDED).first(), timeout=5
    )
    assert (retry.trigger, retry.attempt) == ("retry", 1)
    assert JobRun.objects.get(pk=lost.pk).error.startswith("process lost")


# --- atomic runs ---------------------------------------------------------------------------


@BOTH
def test_an_atomic_run_commits_its_writes_only_with_its_success(make_job, database):
    def writes_then(outcome):
        def handler(ctx):
            User.objects.create(username=f"atomic-{outcome}", email=f"{outcome}@example.org")
            if outcome == "fails":
                raise RuntimeError("half done")
            if outcome == "skips":
                from stayy.scheduling import JobSkipped

                raise JobSkipped("nothing to do")

        return handler

    for outcome, status in (
        ("fails", Status.FAILED),
        ("skips", Status.SKIPPED),
        ("succeeds", Status.SUCCEEDED),
    ):
        spec = make_job(f"tests.atomic_{outcome}", writes_then(outcome), atomic=True)
        run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
        assert runner.execute(spec, run) == status
        row = JobRun.objects.get(pk=run.pk)
        assert (row.status, row.active) == (status, False)
        kept = User.objects.filter(username=f"atomic-{outcome}").exists()
        assert kept == (status == Status.SUCCEEDED), f"{outcome}: writes kept={kept}"


def test_an_atomic_run_whose_row_was_closed_meanwhile_rolls_its_writes_back(make_job):
    table = JobRun._meta.db_table

    def handler(ctx):
        User.objects.create(username="atomic-late", email="late@example.org")
        # Another process's reaper closes the run while the handler still works.
        with psycopg.connect(child_database_url(), autocommit=True) as other:
            other.execute(
                f"UPDATE {table} SET active = false, status = 'failed', error = 'process lost' WHERE id = %s",
                [ctx.run_id],
            )

    spec = make_job("tests.atomic_late", handler, atomic=True)
    run = runs.create_started(job_name=spec.name, trigger=JobRun.Trigger.COMMAND)
    runner.execute(spec, run)
    assert not User.objects.filter(username="atomic-late").exists()
    row = JobRun.objects.get(pk=run.pk)
    assert row.status == Status.FAILED and row.error.startswith("process lost"), row.error

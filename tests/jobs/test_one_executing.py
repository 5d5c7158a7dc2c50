"""No overlap, atomically: of many claims of one job made at the same instant, whatever their kind
(ticks of different times, queued manual runs, ``runjobs --run``), exactly one gets to execute.

The check and the claim are one step because the database decides: a unique index on the job's
name where a run is active. Forced command runs (``--force``) step aside from it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection

from stayy.models import JobRun
from stayy.repository import runs
from tests.jobs.support import grid_tick

pytestmark = pytest.mark.django_db(transaction=True)

Status = JobRun.Status
JOB = "tests.exclusive_job"
BOTH = pytest.mark.parametrize(
    "database", [pytest.param("postgresql"), pytest.param("sqlite", marks=pytest.mark.sqlite)]
)


def at_once(claims: list[Callable[[], JobRun | None]]) -> list[JobRun | BaseException | None]:
    """Run every claim in a thread of its own, released together; their results in order."""
    barrier = threading.Barrier(len(claims))
    results: list[JobRun | BaseException | None] = [None] * len(claims)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = claims[index]()
        except BaseException as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(claims))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def tick_claim(tick) -> Callable[[], JobRun | None]:
    return lambda: runs.claim_tick(job_name=JOB, scheduled_for=tick)


def command_claim() -> JobRun | None:
    return runs.create_started(job_name=JOB, trigger=JobRun.Trigger.COMMAND)


def manual_claim(run_id: int) -> Callable[[], JobRun | None]:
    def claim() -> JobRun | None:
        return JobRun.objects.get(pk=run_id) if runs.claim_queued(run_id, job_name=JOB) else None

    return claim


@BOTH
def test_of_many_concurrent_claims_of_every_kind_exactly_one_executes(make_job, database):
    make_job(JOB, every=1)
    tick = grid_tick(1)
    for round_number in range(5):
        queued = [runs.create_queued(job_name=JOB, requested_by="tester") for _ in range(3)]
        claims = [tick_claim(tick - timedelta(seconds=10 * round_number + step)) for step in range(4)]
        claims += [manual_claim(run.pk) for run in queued]
        claims += [command_claim, command_claim]
        results = at_once(claims)

        won = [result for result in results if isinstance(result, JobRun)]
        errors = [r for r in results if isinstance(r, BaseException) and not isinstance(r, runs.JobExecuting)]
        assert not errors, errors
        assert len(won) == 1, f"round {round_number}: {len(won)} claims executing at once: {won}"
        executing = JobRun.objects.filter(job_name=JOB, active=True)
        assert list(executing.values_list("pk", flat=True)) == [won[0].pk]
        refused = [r for r in results if isinstance(r, runs.JobExecuting)]
        assert all(r.run is None or r.run.pk == won[0].pk for r in refused)
        # Refused manual requests stay queued (the leader closes them as skipped, with the reason).
        assert JobRun.objects.filter(pk__in=[q.pk for q in queued], status=Status.QUEUED).count() == 3 - sum(
            1 for r in won if r.trigger == JobRun.Trigger.MANUAL
        )
        # Refused ticks have no row: the runner records them as skipped.
        runs.finish(won[0], status=Status.SUCCEEDED, summary={})
        JobRun.objects.filter(status=Status.QUEUED).delete()


@BOTH
def test_a_forced_command_run_steps_aside_from_the_one_executing_run(make_job, database):
    make_job(JOB, every=60)
    first = runs.create_started(job_name=JOB, trigger=JobRun.Trigger.COMMAND)
    with pytest.raises(runs.JobExecuting) as refused:
        runs.create_started(job_name=JOB, trigger=JobRun.Trigger.COMMAND)
    assert refused.value.run is not None and refused.value.run.pk == first.pk
    assert str(refused.value) == f"run {first.pk} on {first.host} pid {first.pid}"

    forced = runs.create_started(job_name=JOB, trigger=JobRun.Trigger.COMMAND, forced=True)
    assert forced.forced and JobRun.objects.filter(job_name=JOB, active=True).count() == 2
    # The forced run does not hold the slot: after the first ends, a tick may run beside it.
    runs.finish(first, status=Status.SUCCEEDED, summary={})
    assert runs.claim_tick(job_name=JOB, scheduled_for=grid_tick(60)) is not None


@BOTH
def test_a_queued_run_refused_for_an_executing_one_stays_queued(make_job, database):
    make_job(JOB, every=60)
    executing = runs.claim_tick(job_name=JOB, scheduled_for=grid_tick(60))
    assert executing is not None
    queued = runs.create_queued(job_name=JOB, requested_by="tester")
    with pytest.raises(runs.JobExecuting) as refused:
        runs.claim_queued(queued.pk, job_name=JOB)
    assert refused.value.run.pk == executing.pk
    queued.refresh_from_db()
    assert (queued.status, queued.active) == (Status.QUEUED, False)

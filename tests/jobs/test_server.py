"""The job server in this process: leadership, ticks, pause/resume/run-now, shutdown."""

from __future__ import annotations

import gc
import itertools
import os
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from stayy import services
from stayy.models import Job, JobRun, LeaderLease
from stayy.repository import runs
from stayy.scheduling.server import JobServer
from stayy.scheduling.tracker import tracker
from tests.jobs.support import executing_row, grid_tick, run_rows, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

Status = JobRun.Status
TICK_JOB = "tests.tick_job"


def lease_released(server: JobServer, redis_client) -> None:
    row = LeaderLease.objects.filter(name=server.name).first()
    assert row is None or row.holder == "", f"lease row still held: {row.holder!r}"
    if server.lease.backend == "redis":
        assert redis_client is not None
        assert not redis_client.exists(f"stayy:lease:{server.name}")


def scheduled(**filters):
    return run_rows(job_name=TICK_JOB, trigger=JobRun.Trigger.SCHEDULE, **filters)


def lifecycle(make_job, overrides, start_server, redis_client):
    calls: list[str] = []
    make_job(TICK_JOB, lambda ctx: calls.append(ctx.trigger) or {"ok": 1}, every=3600, sync=False)
    overrides({TICK_JOB: {"interval": 1}})
    server = start_server()

    # Leader: the lease is held with this server's token.
    row = LeaderLease.objects.get(name=server.name)
    assert row.holder == server.token and row.pid == os.getpid()
    if server.lease.backend == "redis":
        assert redis_client.get(f"stayy:lease:{server.name}").decode() == server.token
    job = Job.objects.get(name=TICK_JOB)
    assert job.trigger == "interval:1" and job.schedule == "every second"

    # Ticks every second: one row each, consecutive seconds, no duplicates.
    rows = wait_until(lambda: len(scheduled(status=Status.SUCCEEDED)) >= 3 and scheduled(), timeout=15)
    ticks = [r.scheduled_for for r in rows]
    assert len(set(ticks)) == len(ticks)
    assert all(r.status == Status.SUCCEEDED for r in rows), [
        (r.scheduled_for, r.status, r.error) for r in rows
    ]
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(ticks)), ticks
    assert all(t.microsecond == 0 for t in ticks)
    assert {r.pid for r in rows} == {os.getpid()}

    # Pause: the leader applies it within its control poll; no tick runs while paused.
    services.job_pause(name=TICK_JOB, requested_by="tester")
    wait_until(lambda: Job.objects.get(name=TICK_JOB).next_run_at is None, timeout=10)
    paused_at = timezone.now()
    time.sleep(2.5)  # two and a half ticks of the interval: none may run
    assert scheduled(scheduled_for__gt=paused_at) == []

    # Run now (also while paused): a queued row the leader claims and executes.
    queued = services.job_request_run(name=TICK_JOB, requested_by="tester")
    assert queued.status == Status.QUEUED
    manual = wait_until(
        lambda: JobRun.objects.filter(pk=queued.pk, status=Status.SUCCEEDED).first(),
        timeout=10,
        message="queued run not executed by the leader",
    )
    assert manual.trigger == JobRun.Trigger.MANUAL
    assert manual.requested_by == "tester"
    assert manual.pid == os.getpid() and manual.active is False
    assert manual.started_at - queued.created_at < timedelta(seconds=5)

    # Resume: ticks run again, and the paused ticks are not owed (no missed rows).
    resumed_at = timezone.now()
    services.job_resume(name=TICK_JOB, requested_by="tester")
    wait_until(
        lambda: scheduled(status=Status.SUCCEEDED, scheduled_for__gt=resumed_at),
        timeout=10,
        message="no tick after resume",
    )
    # Ticks due while paused are not owed: nothing is recorded for them. (A tick due after the
    # resume request but before the leader applied it may be recorded as missed.)
    assert scheduled(scheduled_for__gt=paused_at, scheduled_for__lt=resumed_at) == []
    assert scheduled(scheduled_for__lt=paused_at, status__in=[Status.MISSED, Status.SKIPPED]) == []

    # Stop: the lease is released at once.
    server.stop(grace=5)
    assert server.state == "stopped"
    lease_released(server, redis_client)
    assert JobRun.objects.filter(active=True).count() == 0


def test_leader_runs_ticks_pause_resume_run_now_and_releases_the_lease(
    make_job, overrides, start_server, redis_client
):
    lifecycle(make_job, overrides, start_server, redis_client)


@pytest.mark.sqlite
def test_leader_with_the_database_lease_on_sqlite(make_job, overrides, start_server, redis_client):
    lifecycle(make_job, overrides, start_server, redis_client)


def test_shutdown_cancels_a_cooperative_job(make_job, overrides, start_server, redis_client):
    def cooperative(ctx):
        while True:
            ctx.sleep(0.05)
            ctx.check()

    make_job(TICK_JOB, cooperative, every=3600, timeout=120, sync=False)
    overrides({TICK_JOB: {"interval": 1}})
    server = start_server()
    running = wait_until(lambda: scheduled(status=Status.RUNNING), timeout=15)[0]
    started = time.monotonic()
    server.stop(grace=10)
    assert time.monotonic() - started < 10, "stop waited the whole grace for a cooperative job"
    row = JobRun.objects.get(pk=running.pk)
    assert row.status == Status.FAILED
    assert row.error == "cancelled: shutdown"
    assert row.active is False and row.finished_at is not None
    lease_released(server, redis_client)
    assert JobRun.objects.filter(status=Status.RUNNING).count() == 0


def test_shutdown_abandons_a_job_that_ignores_cancellation(make_job, overrides, start_server, redis_client):
    release = threading.Event()

    def stubborn(ctx):
        release.wait(30)  # never looks at ctx

    make_job(TICK_JOB, stubborn, every=3600, timeout=120, sync=False)
    overrides({TICK_JOB: {"interval": 1}})
    server = start_server()
    running = wait_until(lambda: scheduled(status=Status.RUNNING), timeout=15)[0]
    try:
        started = time.monotonic()
        server.stop(grace=0.5)
        assert time.monotonic() - started < 10
        row = JobRun.objects.get(pk=running.pk)
        assert row.status == Status.FAILED
        assert row.error == "abandoned at shutdown: still running after 0.5 s grace"
        assert row.active is False and row.finished_at is not None
        lease_released(server, redis_client)
    finally:
        release.set()
        assert tracker.wait_idle(10)
    row = JobRun.objects.get(pk=running.pk)
    assert (row.status, row.active) == (Status.FAILED, False)  # the late return does not overwrite it
    assert row.error.startswith("abandoned at shutdown")


def test_a_second_server_waits_as_candidate_and_takes_over_when_the_leader_stops(
    make_job, overrides, start_server, server_name, redis_client
):
    make_job(TICK_JOB, every=3600, sync=False)
    overrides({TICK_JOB: {"interval": 1}})
    leader = start_server()
    follower = JobServer(name=server_name)
    follower.start()
    try:
        wait_until(lambda: scheduled(status=Status.SUCCEEDED), timeout=15)
        assert follower.state == "candidate"
        leader.stop(grace=5)
        wait_until(
            lambda: follower.state == "leader",
            timeout=5,  # a released lease is taken at the candidate's next try (<= 1 s)
            message="follower did not take over the released lease",
        )
        after = timezone.now()
        wait_until(lambda: scheduled(status=Status.SUCCEEDED, scheduled_for__gt=after), timeout=10)
        ticks = [r.scheduled_for for r in scheduled()]
        assert len(set(ticks)) == len(ticks)
    finally:
        follower.stop(grace=5)
    lease_released(follower, redis_client)


def database_sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def test_tick_threads_close_their_database_connections(make_job, overrides, start_server):
    """Sessions do not grow with the number of ticks, and none is left for the garbage collector.

    docs/configuration.md sizes PostgreSQL for "threads + max(JOB_TICK_THREADS, jobs running at once) + 2"
    connections per process: a job thread keeps its connection for the next tick, ticks one
    after another reuse it, and a thread that ends closes it.
    """
    if connection.vendor != "postgresql":
        pytest.fail("needs pg_stat_activity (PostgreSQL)")
    make_job(TICK_JOB, every=3600, sync=False)
    overrides({TICK_JOB: {"interval": 1}})
    gc.collect()
    gc.disable()  # what the collector would close at some point is what the runtime leaked
    try:
        before = database_sessions()
        server = start_server()
        wait_until(lambda: len(scheduled(status=Status.SUCCEEDED)) >= 6, timeout=20)
        during = database_sessions()
        server.stop(grace=5)
        allowed = before + 3  # the server loop, one running tick, the heartbeat
        assert during <= allowed, (
            f"{during} sessions on the test database after {len(scheduled())} ticks "
            f"({before} before the server started): finished tick threads kept theirs open"
        )
    finally:
        gc.enable()
        gc.collect()


@pytest.mark.parametrize(
    "database", [pytest.param("default"), pytest.param("sqlite", marks=pytest.mark.sqlite)]
)
def test_a_lease_left_by_a_dead_leader_is_taken_once_it_expires(
    make_job, overrides, server_name, redis_client, database
):
    make_job(TICK_JOB, every=3600, sync=False)
    overrides({})
    server = JobServer(name=server_name)
    left_for = 2.0
    if server.lease.backend == "redis":
        redis_client.set(f"stayy:lease:{server_name}", "dead-leader", px=int(left_for * 1000))
    else:
        LeaderLease.objects.create(
            name=server_name,
            holder="dead-leader",
            backend="database",
            expires_at=timezone.now() + timedelta(seconds=left_for),
        )
    started = time.monotonic()
    server.start()
    try:
        wait_until(lambda: server.state == "leader", timeout=left_for + server.ttl, message="never took over")
        assert time.monotonic() - started >= left_for - 0.5, "took a lease that had not expired"
        assert LeaderLease.objects.get(name=server_name).holder == server.token
    finally:
        server.stop(grace=5)
    lease_released(server, redis_client)


def test_a_new_leader_runs_the_newest_owed_tick_at_once_and_records_the_others_missed(
    make_job, overrides, start_server
):
    make_job(TICK_JOB, every=10, misfire_grace=60)
    overrides({})
    tick = grid_tick(10)
    Job.objects.filter(name=TICK_JOB).update(schedule_since=tick - timedelta(seconds=100))
    last = runs.claim_tick(job_name=TICK_JOB, scheduled_for=tick - timedelta(seconds=30))
    runs.finish(last, status=Status.SUCCEEDED, summary={})

    server = start_server()
    caught = wait_until(
        lambda: scheduled(status=Status.SUCCEEDED, scheduled_for__gt=last.scheduled_for), timeout=10
    )[0]
    assert caught.scheduled_for <= server.leader_since, "waited for the next tick instead of catching up"
    assert caught.started_at - server.leader_since < timedelta(seconds=3)
    between = scheduled(scheduled_for__gt=last.scheduled_for, scheduled_for__lt=caught.scheduled_for)
    expected = (caught.scheduled_for - last.scheduled_for) // timedelta(seconds=10) - 1
    assert [r.status for r in between] == [Status.MISSED] * expected
    assert expected >= 2
    assert all("no scheduler ran this tick" in r.error for r in between)


def test_no_tick_starts_after_stop_returned(make_job, overrides, start_server, monkeypatch):
    """A tick whose claim is in flight when the server stops must not run after ``stop()`` returned.

    In a real process ``stop()`` is followed by exit: a run started after it is killed with
    its row left ``running`` until another leader reaps it as "process lost".
    """
    stop_returned = threading.Event()
    ran_after_stop: list[bool] = []
    servers: list[JobServer] = []
    real_claim = runs.claim_tick

    in_claim = threading.Event()

    def slow_claim(**kwargs):
        in_claim.set()
        # The database answers slowly while the server stops (the tick already passed its
        # leadership checks).
        wait_until(lambda: servers and servers[0].state != "leader", timeout=10)
        time.sleep(0.3)
        return real_claim(**kwargs)

    make_job(TICK_JOB, lambda ctx: ran_after_stop.append(stop_returned.is_set()), every=3600, sync=False)
    overrides({TICK_JOB: {"interval": 1}})
    monkeypatch.setattr(runs, "claim_tick", slow_claim)
    server = start_server()
    servers.append(server)
    assert in_claim.wait(10), "no tick reached its claim"
    server.stop(grace=5)
    stop_returned.set()
    wait_until(
        lambda: not any(t.name == f"stayy-job-{TICK_JOB}" for t in threading.enumerate()),
        timeout=10,
        message="tick threads still alive",
    )
    assert True not in ran_after_stop, (
        f"{ran_after_stop.count(True)} tick(s) claimed and executed after stop() returned: "
        f"{[(r.scheduled_for, r.status, r.started_at) for r in scheduled()]}"
    )


# --- the job threads ---------------------------------------------------------------------------

LONG_JOB = "tests.long_job"


def test_ticks_reuse_job_threads_and_stop_joins_them(make_job, overrides, start_server):
    make_job(TICK_JOB, every=3600, sync=False)
    overrides({TICK_JOB: {"interval": 1}})
    server = start_server()
    wait_until(lambda: len(scheduled(status=Status.SUCCEEDED)) >= 4, timeout=15)
    threads = server.pool.threads()
    # The catch-up tick of the new term may run beside the first scheduled one; no more.
    assert 1 <= len(threads) <= 2, f"{len(threads)} job threads for a 1-second job: not reused"
    server.stop(grace=5)
    assert not server.pool.threads(), "job threads left after stop()"
    assert not any(thread.is_alive() for thread in threads)
    assert not server.pool.submit(lambda: None, name="stayy-job-late"), "the pool took a task after stop()"


def test_a_long_run_does_not_hold_up_the_ticks_of_another_job(make_job, overrides, start_server):
    release = threading.Event()
    make_job(LONG_JOB, lambda ctx: release.wait(60) and None, every=3600, sync=False, timeout=120)
    make_job(TICK_JOB, every=3600, sync=False)
    overrides({LONG_JOB: {"interval": 1}, TICK_JOB: {"interval": 1}})
    server = start_server()
    try:
        long_run = wait_until(
            lambda: run_rows(job_name=LONG_JOB, status=Status.RUNNING), timeout=10, message="no long run"
        )[0]
        ticks = wait_until(
            lambda: (
                (rows := scheduled(status=Status.SUCCEEDED, scheduled_for__gt=long_run.scheduled_for))
                and len(rows) >= 3
                and rows
            ),
            timeout=10,
            message="the 1-second job stopped ticking while the long job ran",
        )
        late = [(r.started_at - r.scheduled_for).total_seconds() for r in ticks]
        assert max(late) < 1.0, f"ticks waited behind the long run: {late}"
        assert JobRun.objects.get(pk=long_run.pk).status == Status.RUNNING
        skipped = run_rows(job_name=LONG_JOB, status=Status.SKIPPED)
        assert skipped and "previous run still running" in skipped[0].error
    finally:
        release.set()
    server.stop(grace=5)
    assert not server.pool.threads()


def test_the_leader_reaps_lost_runs_a_stale_window_into_its_term_then_about_every_second(
    make_job, overrides, start_server, settings
):
    """Heartbeats could not be seen before the term began (the database may have been away), so
    the first reap waits a full stale window; after that, lost runs go within the reap interval."""
    stale_after = 4.0
    settings.STAYY = {**settings.STAYY, "RUN_STALE_AFTER": stale_after}
    make_job(TICK_JOB, every=3600, sync=False)
    make_job("tests.other_job", every=3600, sync=False)
    overrides({})

    def lost_run(job_name: str, heartbeat_age: float) -> JobRun:
        return executing_row(job_name, heartbeat_age=heartbeat_age, host="dead-host", pid=999999)

    long_lost = lost_run(TICK_JOB, 3600)
    began = time.monotonic()
    start_server()
    wait_until(
        lambda: JobRun.objects.filter(pk=long_lost.pk, status=Status.FAILED).exists(), timeout=stale_after + 5
    )
    assert time.monotonic() - began >= stale_after - 0.1, "reaped before a stale window of the term passed"
    # Stale one second from now: closed within the reap interval (1 s) and a loop turn after that.
    soon_lost = lost_run("tests.other_job", stale_after - 1)
    created = time.monotonic()
    wait_until(lambda: JobRun.objects.filter(pk=soon_lost.pk, status=Status.FAILED).exists(), timeout=10)
    assert time.monotonic() - created < 4, "lost run closed later than the reap interval allows"
    row = JobRun.objects.get(pk=soon_lost.pk)
    assert (row.active, row.error) == (False, "process lost: dead-host:999999 stopped heartbeating")

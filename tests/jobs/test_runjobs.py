"""``manage.py runjobs``: --list, --run with its exit codes, and the standalone job server."""

from __future__ import annotations

import io
import os
import signal
import sys
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from stayy.conf import stayy_settings
from stayy.models import Job, JobRun, LeaderLease
from stayy.scheduling import JobSkipped, registry
from tests.jobs.support import every_second, run_manage, run_rows, running, subprocess_env, wait_until

PURGE = "stayy.purge_job_runs"
Status = JobRun.Status


def runjobs(*args: str) -> tuple[int, str, str]:
    """Call the command in this process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("runjobs", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def busy_row(job_name: str, *, heartbeat_age: float = 0.0) -> JobRun:
    now = timezone.now()
    beat = now - timedelta(seconds=heartbeat_age)
    return JobRun.objects.create(
        job_name=job_name,
        scheduled_for=beat,
        trigger=JobRun.Trigger.SCHEDULE,
        status=Status.RUNNING,
        active=True,
        started_at=beat,
        heartbeat_at=beat,
        host="elsewhere",
        pid=31337,
    )


# --- --list ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_list_shows_every_job_with_schedule_and_state(make_job, overrides):
    make_job("tests.listed_job", every=90, sync=False)
    make_job("tests.paused_job", cron="0 3 * * 1-5", sync=False)
    make_job("tests.off_job", every=60, sync=False)
    overrides({"tests.off_job": {"enabled": False}})
    code, out, _ = runjobs("--list")  # creates the catalog rows of jobs no leader wrote yet
    assert code == 0
    Job.objects.filter(name="tests.paused_job").update(paused=True)
    JobRun.objects.create(
        job_name="tests.listed_job",
        scheduled_for=timezone.now(),
        trigger=JobRun.Trigger.COMMAND,
        status=Status.FAILED,
    )
    code, out, _ = runjobs("--list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["JOB", "SCHEDULE", "NEXT", "RUN", "(UTC)", "STATE", "LAST", "RUN"]
    by_name = {line.split()[0]: line for line in lines[1:]}
    assert set(by_name) == set(registry.job_names())
    assert "daily at 03:17 UTC" in by_name[PURGE]
    assert "every 90 seconds" in by_name["tests.listed_job"]
    assert by_name["tests.listed_job"].split()[-2:] == ["active", "failed"]
    assert "at 03:00, Monday through Friday (UTC)" in by_name["tests.paused_job"]
    assert by_name["tests.paused_job"].split()[-2:] == ["paused", "-"]
    assert by_name["tests.off_job"].split()[-2:] == ["disabled", "-"]


# --- --run ----------------------------------------------------------------------------


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_run_succeeds_with_exit_0_and_a_command_run_row():
    result = run_manage("runjobs", "--run", PURGE, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    assert f"{PURGE}: succeeded" in result.stdout
    (row,) = run_rows(job_name=PURGE)
    assert (row.trigger, row.status, row.active) == (JobRun.Trigger.COMMAND, Status.SUCCEEDED, False)
    assert row.summary == {"deleted": 0}
    assert row.pid != os.getpid()


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_run_unknown_job_exits_2_and_lists_the_known_jobs():
    result = run_manage("runjobs", "--run", "nope.nope", env=subprocess_env())
    assert result.returncode == 2, result.stderr
    assert "unknown job 'nope.nope'" in result.stderr
    assert PURGE in result.stderr
    assert "Traceback" not in result.stderr
    assert JobRun.objects.count() == 0


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_run_exits_3_when_the_job_executes_elsewhere_and_force_runs_it_anyway():
    other = busy_row(PURGE)
    result = run_manage("runjobs", "--run", PURGE, env=subprocess_env())
    assert result.returncode == 3, result.stderr
    assert f"run {other.pk} on elsewhere pid 31337" in result.stderr
    assert "--force" in result.stderr
    assert run_rows(job_name=PURGE, trigger=JobRun.Trigger.COMMAND) == []

    result = run_manage("runjobs", "--run", PURGE, "--force", env=subprocess_env())
    assert result.returncode == 0, result.stderr
    (row,) = run_rows(job_name=PURGE, trigger=JobRun.Trigger.COMMAND)
    assert row.status == Status.SUCCEEDED
    other.refresh_from_db()
    assert (other.status, other.active) == (Status.RUNNING, True)


@pytest.mark.django_db(transaction=True)
def test_run_with_a_stale_run_elsewhere_reaps_it_and_runs(make_job):
    make_job("tests.ok_job", sync=False)
    lost = busy_row("tests.ok_job", heartbeat_age=stayy_settings.run_stale_after + 60)
    code, _out, err = runjobs("--run", "tests.ok_job")
    assert code == 0, err
    lost.refresh_from_db()
    assert lost.status == Status.FAILED and lost.error.startswith("process lost")


@pytest.mark.django_db(transaction=True)
def test_run_in_process_exit_codes(make_job):
    def ok(ctx):
        ctx.report_progress(step=1)
        return {"done": 2}

    def boom(ctx):
        raise RuntimeError("kaput")

    def skip(ctx):
        raise JobSkipped("nothing to do")

    make_job("tests.ok_job", ok, sync=False)
    make_job("tests.failing_job", boom, sync=False)
    make_job("tests.skipping_job", skip, sync=False)

    code, out, err = runjobs("--run", "tests.ok_job")
    assert code == 0, err
    assert "progress: step=1" in out
    assert "tests.ok_job: succeeded in " in out
    assert "'step': 1" in out and "'done': 2" in out  # the summary line

    code, out, err = runjobs("--run", "tests.failing_job")
    assert code == 1
    assert "tests.failing_job: failed" in err
    assert "RuntimeError: kaput" in err
    row = run_rows(job_name="tests.failing_job")[0]
    assert (row.trigger, row.status) == (JobRun.Trigger.COMMAND, Status.FAILED)
    assert "kaput" in row.traceback

    code, out, err = runjobs("--run", "tests.skipping_job")
    assert code == 0, err
    assert "tests.skipping_job: skipped" in out

    code, out, err = runjobs("--run", "nope.nope")
    assert code == 2
    assert "tests.ok_job" in err

    busy_row("tests.ok_job")
    code, out, err = runjobs("--run", "tests.ok_job")
    assert code == 3
    assert "use --force" in err
    code, out, err = runjobs("--run", "tests.ok_job", "--force")
    assert code == 0, err


class TerminalOutput(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.django_db(transaction=True)
def test_run_on_a_terminal_redraws_one_progress_line(make_job, monkeypatch):
    def counting(ctx):
        for step in (1, 2, 3):
            ctx.report_progress(step=step, note="x" * 100)
        return {"done": 3}

    make_job("tests.counting_job", counting, sync=False)
    monkeypatch.setenv("COLUMNS", "60")
    out = TerminalOutput()

    call_command("runjobs", "--run", "tests.counting_job", stdout=out, stderr=io.StringIO())

    text = out.getvalue()
    redraws = text.split("\r\x1b[K")[1:]
    assert len(redraws) == 3
    assert [redraw.split(" s  ", 1)[1][:6] for redraw in redraws] == ["step=1", "step=2", "step=3"]
    assert all(len(redraw.split("\n")[0]) == 59 for redraw in redraws), "cut to the terminal width"
    assert redraws[-1].split("\n")[1].startswith("tests.counting_job: succeeded in ")
    assert "progress:" not in text


@pytest.mark.django_db(transaction=True)
def test_run_that_times_out_exits_1(make_job):
    def slow(ctx):
        while not ctx.sleep(0.05):
            pass
        ctx.check()

    make_job("tests.slow_job", slow, timeout=0.3, sync=False)
    code, _out, err = runjobs("--run", "tests.slow_job")
    assert code == 1
    assert "tests.slow_job: timed_out" in err


# --- the standalone job server --------------------------------------------------------


def standalone(tmp_path):
    job_name = f"test-rj-{uuid.uuid4().hex[:8]}"
    env = subprocess_env(JOB_NAME=job_name, JOB_OVERRIDES=every_second(PURGE))
    argv = [sys.executable, "manage.py", "runjobs"]
    with running(argv, env=env, log_path=tmp_path / "runjobs.log") as process:
        wait_until(
            lambda: len(run_rows(job_name=PURGE, status=Status.SUCCEEDED)) >= 2, timeout=40, interval=0.2
        )
        rows = run_rows(job_name=PURGE)
        assert {r.pid for r in rows} == {process.pid}
        assert {r.trigger for r in rows} == {JobRun.Trigger.SCHEDULE}
        lease = LeaderLease.objects.get(name=job_name)
        assert lease.pid == process.pid and lease.holder
        process.signal(signal.SIGTERM)
        assert process.wait(timeout=float(env["JOB_SHUTDOWN_GRACE"]) + 15) == 0, process.output()
        assert "SIGTERM received: stopping the job server" in process.output()
    lease = LeaderLease.objects.get(name=job_name)
    assert lease.holder == ""
    if stayy_settings.redis_url:
        import redis

        assert not redis.Redis.from_url(stayy_settings.redis_url).exists(f"stayy:lease:{job_name}")
    assert JobRun.objects.filter(active=True).count() == 0


@pytest.mark.processes
@pytest.mark.timeout(90)
@pytest.mark.django_db(transaction=True)
def test_standalone_records_runs_and_exits_0_on_sigterm_releasing_the_lease(tmp_path):
    standalone(tmp_path)


@pytest.mark.sqlite
@pytest.mark.processes
@pytest.mark.timeout(90)
@pytest.mark.django_db(transaction=True)
def test_standalone_on_sqlite(tmp_path):
    standalone(tmp_path)

"""No overlap across processes, for every kind of run at once.

Two ``runjobs`` servers tick the slow job every second (runs of 0.5 s), while
nine ``runjobs --run`` processes and nine run-now requests
all try to run it at the same moments. Whatever won each time, the handler's
own execution log shows no two executions at once, and every loser says why.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from harness.cluster import MARGIN, PURGE, SLOW, TTL
from harness.cluster.evidence import assert_no_concurrent_executions, exec_intervals, live_leader_pid
from harness.cluster.processes import Cluster
from stayy.models import JobRun
from stayy.repository import runs
from tests.cluster.support import MAIN_REDIS_URL
from tests.support import PROJECT_DIR, wait_until


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_ticks_commands_and_run_now_requests_never_execute_at_once(cluster: Cluster) -> None:
    env = cluster.env(
        redis_url=MAIN_REDIS_URL,
        overrides={PURGE: {"enabled": False}, SLOW: {"enabled": True}},
        # Half of each second the job executes: claims lose and win about as often.
        STAYY_TEST_SLOW_SECONDS="0.5",
    )
    cluster.runjobs("p", env=env)
    cluster.runjobs("q", env=env)
    wait_until(lambda: live_leader_pid(cluster.job_name), timeout=15 + TTL, message="nobody leads")
    wait_until(lambda: JobRun.objects.filter(job_name=SLOW, status="succeeded").exists(), timeout=MARGIN)

    commands = []
    for wave in range(3):
        for number in range(3):
            commands.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "runjobs", "--run", SLOW],
                    cwd=PROJECT_DIR,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            # What the API's run-now does (this process does not register the test job).
            runs.create_queued(job_name=SLOW, requested_by=f"tester-{wave}-{number}")
            # Spread over the second: some claims meet a tick's run, some a free slot.
            time.sleep(0.35)
        time.sleep(0.25)
    outcomes = [(process.wait(timeout=60), *process.communicate()) for process in commands]
    wait_until(
        lambda: not JobRun.objects.filter(job_name=SLOW, status="queued").exists(),
        timeout=2 + MARGIN,
        message="run-now requests still queued",
    )
    time.sleep(1.0)  # the last executions end
    cluster.kill_all()

    assert_no_concurrent_executions(exec_intervals(cluster, trigger=None))
    codes = sorted(code for code, _, _ in outcomes)
    assert set(codes) <= {0, 3}, outcomes
    assert all("is executing elsewhere" in err for code, _, err in outcomes if code == 3), outcomes
    manual = JobRun.objects.filter(job_name=SLOW, trigger="manual")
    assert manual.count() == 9
    assert all(r.status in ("succeeded", "skipped") for r in manual), [(r.status, r.error) for r in manual]
    assert all(r.error.startswith("previous run") for r in manual if r.status == "skipped")
    refused = codes.count(3) + sum(1 for r in manual if r.status == "skipped")
    print(f"\n[claims] commands exited {codes}; run-now: {sorted(r.status for r in manual)}")
    assert refused, "no claim was refused: the claims did not contend"
    triggers = {e["trigger"] for e in cluster.exec_entries() if e["event"] == "start"}
    assert "schedule" in triggers and ("command" in triggers or "manual" in triggers), triggers

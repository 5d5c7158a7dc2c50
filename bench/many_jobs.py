"""Benchmark 4b, a hundred jobs: 100 one-second jobs on one ``runjobs`` leader.

``python -m bench.many_jobs [--seconds 60] [--rounds 2]``

One ``runjobs`` process (the Redis lease) runs the bench-only jobs
``bench.many_000`` … ``bench.many_099`` (bench/site/jobs.py: every second,
doing nothing but noting when they began), all due at the same instants. Per
window of ``--seconds`` (a fresh process each): the lateness of each run at
its handler (when the handler began, from the run's summary, minus the
scheduled time) and the CPU the leader process used (``/proc/<pid>/stat``,
user + system, over the window), as a share of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from datetime import datetime

from django.utils import timezone

from bench import common
from bench.site.jobs import MANY_JOBS

TICKS_PER_S = 100
TARGET_P99_MS = 50.0
TARGET_CPU = 0.10


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def handler_lateness(*, since: datetime, until: datetime) -> tuple[list[float], dict[str, int]]:
    from stayy.models import JobRun

    rows = JobRun.objects.filter(
        job_name__in=MANY_JOBS, trigger="schedule", scheduled_for__gte=since, scheduled_for__lt=until
    ).values_list("status", "scheduled_for", "summary")
    late: list[float] = []
    statuses: dict[str, int] = {}
    for status, scheduled_for, summary in rows:
        statuses[status] = statuses.get(status, 0) + 1
        if status == "succeeded":
            started = datetime.fromisoformat(summary["handler_started"])
            late.append((started - scheduled_for).total_seconds() * 1000)
    return late, statuses


def window(*, seconds: int, out_name: str) -> tuple[list[float], float, dict[str, int]]:
    from stayy.models import JobRun

    env = common.service_env(
        JOB_ENABLE="1",
        JOB_OVERRIDES=json.dumps({name: {"enabled": True} for name in MANY_JOBS}),
    )
    out = common.run_dir(out_name)
    proc = common.Process([common.PYTHON, "manage.py", "runjobs"], env=env, log_path=out / "runjobs.log")
    try:
        started = timezone.now()
        common.wait_for(
            lambda: JobRun.objects.filter(job_name=MANY_JOBS[-1], scheduled_for__gte=started).exists(),
            timeout=60,
            what="the runjobs leader's first ticks",
            proc=proc,
        )
        threading.Event().wait(5)  # warm: every job thread has its connection
        since, cpu_before = timezone.now(), cpu_seconds(proc.pid)
        threading.Event().wait(seconds)
        until, cpu_after = timezone.now(), cpu_seconds(proc.pid)
        threading.Event().wait(3)  # the window's last ticks finish
    finally:
        proc.stop()
    late, statuses = handler_lateness(since=since, until=until)
    cpu = (cpu_after - cpu_before) / (until - since).total_seconds()
    common.log(
        f"{len(late)} runs, handler p50 "
        f"{common.percentile(late, 50):.1f} ms, p99 {common.percentile(late, 99):.1f} ms; "
        f"leader CPU {cpu:.1%} of a core; statuses {statuses}"
    )
    return late, cpu, statuses


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=60, help="Length of each window.")
    parser.add_argument("--rounds", type=int, default=2, help="Windows, each with a fresh leader.")
    args = parser.parse_args()

    common.recreate_database()
    common.setup_django()
    windows = [window(seconds=args.seconds, out_name=f"many-jobs-{number}") for number in range(args.rounds)]

    results = common.Results(
        f"Benchmark 4b: 100 one-second jobs on one leader ({args.rounds} x {args.seconds} s)"
    )
    late = [sample for windowed in windows for sample in windowed[0]]
    not_run: dict[str, int] = {}
    for _, _, statuses in windows:
        for status, count in statuses.items():
            if status != "succeeded":
                not_run[status] = not_run.get(status, 0) + count
    expected = TICKS_PER_S * args.seconds * args.rounds
    results.add("runs", f"{len(late):,}", f">= {int(expected * 0.95):,}", len(late) >= expected * 0.95)
    p99 = common.percentile(late, 99)
    results.add("handler p50", f"{common.percentile(late, 50):.1f} ms")
    results.add("handler p99", f"{p99:.1f} ms", f"<= {TARGET_P99_MS:.0f} ms", p99 <= TARGET_P99_MS)
    cpu = common.median([windowed[1] for windowed in windows])
    results.add("leader CPU (median)", f"{cpu:.1%}", f"<= {TARGET_CPU:.0%}", cpu <= TARGET_CPU)
    results.add("ticks not run", json.dumps(not_run) if not_run else "0", "0", not not_run)
    results.note(
        "All 100 jobs are due at the same instants (one interval grid); the handler's lateness is from "
        "the first thing it does (bench/site/jobs.py); CPU is the runjobs process's, user + system."
    )
    results.print()


if __name__ == "__main__":
    main()

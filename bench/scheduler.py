"""Benchmark 4, scheduler precision: lateness (start - scheduled time) of ten 1-second jobs.

``python -m bench.scheduler [--users 100000] [--seconds 100]``

gunicorn (2 workers, ``JOB_ENABLE=1``) runs the bench-only jobs
``bench.tick_0`` … ``bench.tick_9`` (bench/site/jobs.py: every second, doing
nothing but noting when they began). Lateness comes from their run rows, two
ways: the claim's (``started_at - scheduled_for``, as the runner records it
when it issues the claim) and the handler's (when the handler began, from the
run's summary, ``- scheduled_for``). Two phases of ``--seconds`` each (10 samples a
second, so 1,000 per phase at the default):

* idle — nothing else runs (no HTTP load, no sync);
* under load — benchmark 2's load: ``GET /api/users/`` at half the jobs-off
  capacity, the sync every 5 s with upstream changes, one full sync.

Every tick must leave a row; ticks recorded ``missed`` or ``skipped`` are
reported too (a precise scheduler has none).
"""

from __future__ import annotations

import argparse
import json
import threading
from datetime import datetime

from django.utils import timezone

from bench import common, load
from bench.site.jobs import TICK_JOBS

TICKS_ON = {name: {"enabled": True} for name in TICK_JOBS}


def lateness(*, since: datetime, until: datetime) -> tuple[list[float], list[float], dict[str, int]]:
    """Lateness in ms of the tick runs scheduled in [since, until): of the claim (the run row's
    ``started_at``) and of the handler's start (its summary); and every status counted."""
    from stayy.models import JobRun

    rows = JobRun.objects.filter(
        job_name__in=TICK_JOBS, trigger="schedule", scheduled_for__gte=since, scheduled_for__lt=until
    ).values_list("status", "scheduled_for", "started_at", "summary")
    claims: list[float] = []
    handlers: list[float] = []
    statuses: dict[str, int] = {}
    for status, scheduled_for, started_at, summary in rows:
        statuses[status] = statuses.get(status, 0) + 1
        if status == "succeeded" and started_at is not None:
            claims.append((started_at - scheduled_for).total_seconds() * 1000)
            handler_started = datetime.fromisoformat(summary["handler_started"])
            handlers.append((handler_started - scheduled_for).total_seconds() * 1000)
    return claims, handlers, statuses


def phase(name: str, seconds: int) -> tuple[list[float], list[float], dict[str, int]]:
    start = timezone.now()
    threading.Event().wait(seconds)
    end = timezone.now()
    threading.Event().wait(3)  # the last ticks finish
    claims, handlers, statuses = lateness(since=start, until=end)
    for what, samples in (("claim", claims), ("handler", handlers)):
        common.log(
            f"{name}, {what}: {len(samples)} samples, p50 {common.percentile(samples, 50):.1f} ms, "
            f"p99 {common.percentile(samples, 99):.1f} ms, max {max(samples, default=float('nan')):.1f} ms"
        )
    common.log(f"{name}: statuses {statuses}")
    return claims, handlers, statuses


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument(
        "--seconds", type=int, default=100, help="Length of each phase (10 samples a second)."
    )
    parser.add_argument("--capacity-seconds", type=int, default=10)
    args = parser.parse_args()

    stage = load.prepare("scheduler", users=args.users)
    try:
        server, base = load.gunicorn(stage, "gunicorn-jobs-off", jobs=False)
        try:
            common.run_wrk(f"{base}/api/users/", seconds=3, connections=8, token=stage.token)
            capacity = common.run_wrk(
                f"{base}/api/users/", seconds=args.capacity_seconds, connections=8, token=stage.token
            )
        finally:
            server.stop()
        rate = capacity.requests_per_s / 2
        common.log(f"capacity {capacity.requests_per_s:.0f} req/s; the load phase sends {rate:.0f} req/s")

        # Idle: the tick jobs only (the sync job keeps its 5-minute default, no upstream configured).
        started = timezone.now()
        env = common.service_env(JOB_ENABLE="1", JOB_OVERRIDES=json.dumps(TICKS_ON))
        server, base = common.start_gunicorn(out=stage.out, name="gunicorn-idle", env=env)
        try:
            load.wait_for_leader(TICK_JOBS[0], after=started)
            threading.Event().wait(3)
            idle, idle_handlers, idle_statuses = phase("idle", args.seconds)
        finally:
            server.stop()

        started = timezone.now()
        server, base = load.gunicorn(stage, "gunicorn-load", jobs=True, overrides=TICKS_ON)
        try:
            load.wait_for_leader(TICK_JOBS[0], after=started)
            url = f"{base}/api/users/"
            common.run_wrk(url, seconds=3, connections=8, token=stage.token)  # warm-up
            with load.UpstreamChanges(stage):
                traffic = threading.Thread(
                    target=common.run_at_rate,
                    kwargs={"url": url, "rate": rate, "seconds": args.seconds + 10, "token": stage.token},
                    daemon=True,
                )
                traffic.start()
                threading.Event().wait(3)
                load.full_sync_now()
                window_start = timezone.now()
                busy, busy_handlers, busy_statuses = phase("under load", args.seconds)
                syncs = load.sync_runs(since=window_start, until=timezone.now(), users=stage.users)
                traffic.join()
        finally:
            server.stop()
    finally:
        stage.stop()

    results = common.Results(
        f"Benchmark 4: scheduler precision (ten 1-second jobs, {args.seconds} s per phase)"
    )
    for label, claims, handlers, statuses, target in (
        ("idle", idle, idle_handlers, idle_statuses, 20.0),
        ("under load", busy, busy_handlers, busy_statuses, 250.0),
    ):
        results.add(f"{label}: samples", f"{len(claims):,}", ">= 1,000", len(claims) >= 1000)
        for what, samples in (("claim (started_at)", claims), ("handler start", handlers)):
            p50, p99 = common.percentile(samples, 50), common.percentile(samples, 99)
            results.add(f"{label}: {what} p50", f"{p50:.1f} ms")
            results.add(f"{label}: {what} p99", f"{p99:.1f} ms", f"< {target:.0f} ms", p99 < target)
        not_run = {status: count for status, count in statuses.items() if status != "succeeded"}
        results.add(f"{label}: ticks not run", json.dumps(not_run) if not_run else "0", "0", not not_run)
    results.note(
        f"Under load: GET /api/users/ at {rate:,.0f} req/s (half the jobs-off capacity); {syncs.describe()}."
    )
    results.note(
        "Lateness = start - scheduled_for of each run, all written by the leader on one host; "
        "the claim's start is the run row's started_at, taken when the leader issues the claim, "
        "the handler's is the first thing the handler does (bench/site/jobs.py)."
    )
    results.print()


if __name__ == "__main__":
    main()

"""Benchmark 2, HTTP cost of embedded jobs: ``GET /api/users/`` on gunicorn (2 workers), jobs off vs on.

``python -m bench.http_jobs [--users 100000] [--window 120] [--capacity-seconds 15] [--capacity-rounds 3]``

1. Jobs off: the capacity (wrk, closed loop), then ``--window`` seconds at half
   that rate (hey, fixed rate): p50/p99 and errors.
2. Jobs on (``JOB_ENABLE=1``), same rate and window, while the sync job runs
   every 5 s against the demo upstream (100 users change every 5 s) and one
   full sync of every user runs inside the window (its cursor is reset 5 s in).
3. Full-load throughput with jobs on (wrk again, a full sync started with it).
4. ``--capacity-rounds`` minus 1 more rounds of capacity, each on a fresh gunicorn:
   jobs off, then jobs on with a full sync started first. The throughput ratio
   is of the medians (the first off and the last on of steps 1 and 3 count as
   round 1): the machine's speed drifts by tens of percent within minutes, and
   alternating rounds let both sides see it alike.

Targets: p99 on <= 1.3x p99 off, no errors; throughput on >= 0.9x off.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.utils import timezone

from bench import common, load

CONNECTIONS = 8


@dataclass
class Phase:
    capacity: common.WrkResult
    at_rate: common.RateResult | None
    syncs: load.SyncRuns | None = None


def measure_capacity(url: str, token: str, seconds: int) -> common.WrkResult:
    common.run_wrk(url, seconds=3, connections=CONNECTIONS, token=token)  # warm-up
    result = common.run_wrk(url, seconds=seconds, connections=CONNECTIONS, token=token)
    common.log(
        f"capacity {result.requests_per_s:.0f} req/s (p99 {result.p99_ms:.1f} ms, errors {result.errors})"
    )
    return result


def at_rate(url: str, token: str, rate: float, seconds: int) -> common.RateResult:
    result = common.run_at_rate(url, rate=rate, seconds=seconds, token=token)
    common.log(
        f"{rate:.0f} req/s for {seconds} s: {result.answered} answered of {result.expected}, "
        f"p50 {result.p(50):.1f} ms, p99 {result.p(99):.1f} ms, statuses {result.statuses}"
    )
    return result


def capacity_off(stage: load.Stage, name: str, seconds: int) -> common.WrkResult:
    """Capacity of a fresh jobs-off gunicorn."""
    server, base = load.gunicorn(stage, name, jobs=False)
    try:
        return measure_capacity(f"{base}/api/users/", stage.token, seconds)
    finally:
        server.stop()


def capacity_on(stage: load.Stage, name: str, seconds: int) -> common.WrkResult:
    """Capacity of a fresh jobs-on gunicorn while a full sync runs (started just before)."""
    started = timezone.now()
    server, base = load.gunicorn(stage, name, jobs=True)
    try:
        load.wait_for_leader(load.SYNC_JOB, after=started)
        return capacity_with_full_sync(stage, f"{base}/api/users/", seconds)
    finally:
        server.stop()


def capacity_with_full_sync(stage: load.Stage, url: str, seconds: int) -> common.WrkResult:
    """Capacity of a jobs-on server once the full sync started (its cursor reset first)."""
    load.full_sync_now()
    time.sleep(load.SYNC_EVERY)  # the full sync has started
    capacity_start = timezone.now()
    result = measure_capacity(url, stage.token, seconds)
    syncs = load.sync_runs(since=capacity_start, until=timezone.now(), users=stage.users)
    common.log(f"during the capacity run: {syncs.describe()}")
    return result


def median_capacity(results: list[common.WrkResult]) -> float:
    return statistics.median(result.requests_per_s for result in results)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=120, help="Seconds at the fixed rate, per phase.")
    parser.add_argument("--capacity-seconds", type=int, default=15)
    parser.add_argument(
        "--capacity-rounds",
        type=int,
        default=3,
        help="Rounds of capacity off, then on (medians): the first off and last on are the phases' own.",
    )
    args = parser.parse_args()

    stage = load.prepare("http_jobs", users=args.users)
    try:
        server, base = load.gunicorn(stage, "gunicorn-jobs-off", jobs=False)
        url = f"{base}/api/users/"
        try:
            off_capacity = measure_capacity(url, stage.token, args.capacity_seconds)
            rate = off_capacity.requests_per_s / 2
            off = Phase(off_capacity, at_rate(url, stage.token, rate, args.window))
        finally:
            server.stop()

        started = timezone.now()
        server, base = load.gunicorn(stage, "gunicorn-jobs-on", jobs=True)
        url = f"{base}/api/users/"
        try:
            load.wait_for_leader(load.SYNC_JOB, after=started)
            common.run_wrk(url, seconds=3, connections=CONNECTIONS, token=stage.token)  # warm-up
            with load.UpstreamChanges(stage):
                window_start = timezone.now()
                reset = _later(5, load.full_sync_now)
                on_rate = at_rate(url, stage.token, rate, args.window)
                reset.join()
                window_end = timezone.now()
                on_syncs = load.sync_runs(since=window_start, until=window_end, users=stage.users)
                common.log(f"during the window: {on_syncs.describe()}")
                on_capacity = capacity_with_full_sync(stage, url, args.capacity_seconds)
            on = Phase(on_capacity, on_rate, on_syncs)
        finally:
            server.stop()
        # More rounds, alternating, so that both sides see the machine alike (it drifts).
        offs, ons = [off.capacity], [on.capacity]
        for round_number in range(2, args.capacity_rounds + 1):
            offs.append(capacity_off(stage, f"gunicorn-off-{round_number}", args.capacity_seconds))
            ons.append(capacity_on(stage, f"gunicorn-on-{round_number}", args.capacity_seconds))
    finally:
        stage.stop()

    assert off.at_rate is not None and on.at_rate is not None
    results = common.Results(
        f"Benchmark 2: HTTP cost of embedded jobs (GET /api/users/, gunicorn 2 workers, {args.users:,} users)"
    )
    results.add("capacity, jobs off (sets the rate)", f"{off.capacity.requests_per_s:,.0f} req/s")
    results.add(
        f"jobs off at {rate:,.0f} req/s",
        f"p50 {off.at_rate.p(50):.1f} ms, p99 {off.at_rate.p(99):.1f} ms, {off.at_rate.errors} errors",
    )
    results.add(
        f"jobs on at {rate:,.0f} req/s",
        f"p50 {on.at_rate.p(50):.1f} ms, p99 {on.at_rate.p(99):.1f} ms, {on.at_rate.errors} errors",
    )
    p99_ratio = on.at_rate.p(99) / off.at_rate.p(99)
    results.add("p99 on / off", f"{p99_ratio:.2f}x", "<= 1.3x", p99_ratio <= 1.3)
    errors = off.at_rate.errors + on.at_rate.errors
    results.add("errors at the fixed rate", str(errors), "0", errors == 0)
    off_median, on_median = median_capacity(offs), median_capacity(ons)
    throughput = on_median / off_median
    rounds = len(offs)
    results.add(
        f"capacity off, median of {rounds}",
        f"{off_median:,.0f} req/s ({', '.join(f'{r.requests_per_s:.0f}' for r in offs)})",
    )
    results.add(
        f"capacity on (full sync running), median of {rounds}",
        f"{on_median:,.0f} req/s ({', '.join(f'{r.requests_per_s:.0f}' for r in ons)})",
    )
    results.add("capacity on / off", f"{throughput:.2f}x", ">= 0.9x", throughput >= 0.9)
    assert on.syncs is not None
    results.note(f"Jobs on, in the {args.window} s window: {on.syncs.describe()}.")
    results.note(
        f"Fixed rate, evenly spaced, from {common.RATE_WORKERS} hey senders started 1/rate apart; "
        f"answered {off.at_rate.answered:,} / {on.at_rate.answered:,} of {off.at_rate.expected:,} due "
        "(off / on). Capacity with wrk, 1 thread, 8 connections. The load generators run unpinned: "
        "at half capacity hey needs a few % of one core."
    )
    if on.syncs.full_runs == 0:
        results.note("No full sync finished inside the window: make --window longer.")
    results.print()


def _later(seconds: float, action: Callable[[], None]) -> threading.Thread:
    """Run ``action`` in ``seconds`` in a background thread."""

    def run() -> None:
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


if __name__ == "__main__":
    main()

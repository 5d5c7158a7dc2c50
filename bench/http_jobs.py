"""Benchmark 2, HTTP cost of embedded jobs: ``GET /api/users/`` on gunicorn (2 workers), jobs off vs on.

``python -m bench.http_jobs [--users 100000] [--rounds 3] [--window 120] [--capacity-seconds 15]
[--capacity-pairs 5]``

1. The rate: a jobs-off server's capacity (wrk, closed loop), measured three
   times; half the median is the fixed rate of every window.
2. ``--rounds`` rounds, each on two fresh servers, one after the other:

   * jobs off (``JOB_ENABLE=0``): its capacity, then ``--window`` seconds at
     the rate (hey, evenly spaced): p50/p99 and errors;
   * jobs on (``JOB_ENABLE=1``): the same window while the sync job runs
     every 5 s against the demo upstream (100 users change every 5 s) and one
     full sync of every user runs inside it (its cursor is reset 5 s in);
     then its capacity while another full sync runs.

3. More capacity pairs, up to ``--capacity-pairs`` in all: a fresh jobs-on
   server (a full sync running), then a fresh jobs-off one; the reverse of the
   rounds' order, so that a drift of the machine's speed weighs on both sides.

The ratios are of the medians: this VM's speed drifts by tens of percent
within minutes, and alternating servers let both sides see it alike.

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
RATE_RUNS = 3


@dataclass
class Round:
    """One jobs-off and one jobs-on server, measured alike."""

    off_capacity: common.WrkResult
    off: common.RateResult
    on: common.RateResult
    on_capacity: common.WrkResult
    syncs: load.SyncRuns


def measure_capacity(url: str, token: str, seconds: int, *, warm_up: bool = True) -> common.WrkResult:
    if warm_up:
        common.run_wrk(url, seconds=3, connections=CONNECTIONS, token=token)
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


def rate_capacities(stage: load.Stage, seconds: int) -> list[common.WrkResult]:
    """A fresh jobs-off server's capacity, measured RATE_RUNS times in a row."""
    server, base = load.gunicorn(stage, "gunicorn-rate", jobs=False)
    try:
        url = f"{base}/api/users/"
        return [
            measure_capacity(url, stage.token, seconds, warm_up=number == 0) for number in range(RATE_RUNS)
        ]
    finally:
        server.stop()


def round_off(
    stage: load.Stage, number: int, *, rate: float, window: int, seconds: int
) -> tuple[common.WrkResult, common.RateResult]:
    """A fresh jobs-off server: its capacity, then the window at the rate."""
    server, base = load.gunicorn(stage, f"gunicorn-off-{number}", jobs=False)
    try:
        url = f"{base}/api/users/"
        capacity = measure_capacity(url, stage.token, seconds)
        return capacity, at_rate(url, stage.token, rate, window)
    finally:
        server.stop()


def round_on(
    stage: load.Stage, number: int, *, rate: float, window: int, seconds: int
) -> tuple[common.RateResult, load.SyncRuns, common.WrkResult]:
    """A fresh jobs-on server: the window at the rate with syncs and a full sync, then its capacity."""
    started = timezone.now()
    server, base = load.gunicorn(stage, f"gunicorn-on-{number}", jobs=True)
    try:
        url = f"{base}/api/users/"
        load.wait_for_leader(load.SYNC_JOB, after=started)
        common.run_wrk(url, seconds=3, connections=CONNECTIONS, token=stage.token)  # warm-up
        with load.UpstreamChanges(stage):
            window_start = timezone.now()
            reset = _later(5, load.full_sync_now)
            result = at_rate(url, stage.token, rate, window)
            reset.join()
            syncs = load.sync_runs(since=window_start, until=timezone.now(), users=stage.users)
            common.log(f"during the window: {syncs.describe()}")
            capacity = capacity_with_full_sync(stage, url, seconds)
        return result, syncs, capacity
    finally:
        server.stop()


def capacity_off(stage: load.Stage, name: str, seconds: int) -> common.WrkResult:
    """Capacity of a fresh jobs-off server."""
    server, base = load.gunicorn(stage, name, jobs=False)
    try:
        return measure_capacity(f"{base}/api/users/", stage.token, seconds)
    finally:
        server.stop()


def capacity_on(stage: load.Stage, name: str, seconds: int) -> common.WrkResult:
    """Capacity of a fresh jobs-on server while a full sync runs."""
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of jobs off, then on (medians).")
    parser.add_argument("--window", type=int, default=120, help="Seconds at the fixed rate, per server.")
    parser.add_argument("--capacity-seconds", type=int, default=15)
    parser.add_argument(
        "--capacity-pairs",
        type=int,
        default=5,
        help="Pairs of capacity runs in all (one per round, then on-then-off pairs).",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.capacity_pairs < args.rounds:
        parser.error("--capacity-pairs must be at least --rounds")

    stage = load.prepare("http_jobs", users=args.users)
    rounds: list[Round] = []
    try:
        rate_runs = rate_capacities(stage, args.capacity_seconds)
        rate = statistics.median(run.requests_per_s for run in rate_runs) / 2
        common.log(f"the fixed rate: {rate:.0f} req/s")
        for number in range(1, args.rounds + 1):
            off_capacity, off = round_off(
                stage, number, rate=rate, window=args.window, seconds=args.capacity_seconds
            )
            on, syncs, on_capacity = round_on(
                stage, number, rate=rate, window=args.window, seconds=args.capacity_seconds
            )
            rounds.append(Round(off_capacity, off, on, on_capacity, syncs))
        offs = [each.off_capacity for each in rounds]
        ons = [each.on_capacity for each in rounds]
        for number in range(args.rounds + 1, args.capacity_pairs + 1):
            ons.append(capacity_on(stage, f"gunicorn-on-{number}", args.capacity_seconds))
            offs.append(capacity_off(stage, f"gunicorn-off-{number}", args.capacity_seconds))
    finally:
        stage.stop()
    report(args, rate, rate_runs, rounds, capacity={"off": offs, "on": ons}).print()


def report(
    args: argparse.Namespace,
    rate: float,
    rate_runs: list[common.WrkResult],
    rounds: list[Round],
    *,
    capacity: dict[str, list[common.WrkResult]],
) -> common.Results:
    def median(values: list[float]) -> float:
        return statistics.median(values)

    def listed(values: list[float]) -> str:
        return ", ".join(f"{value:.1f}" for value in values)

    n = len(rounds)
    results = common.Results(
        f"Benchmark 2: HTTP cost of embedded jobs (GET /api/users/, gunicorn 2 workers, {args.users:,} users)"
    )
    results.add(
        f"capacity, jobs off, median of {len(rate_runs)} (sets the rate)",
        f"{median([run.requests_per_s for run in rate_runs]):,.0f} req/s "
        f"({', '.join(f'{run.requests_per_s:.0f}' for run in rate_runs)})",
    )
    p99 = {}
    for side in ("off", "on"):
        runs: list[common.RateResult] = [getattr(each, side) for each in rounds]
        p50s, p99s = [run.p(50) for run in runs], [run.p(99) for run in runs]
        p99[side] = median(p99s)
        results.add(
            f"jobs {side} at {rate:,.0f} req/s, median of {n}",
            f"p50 {median(p50s):.1f} ms, p99 {p99[side]:.1f} ms (p99s {listed(p99s)})",
        )
    p99_ratio = p99["on"] / p99["off"]
    results.add("p99 on / off", f"{p99_ratio:.2f}x", "<= 1.3x", p99_ratio <= 1.3)
    errors = sum(each.off.errors + each.on.errors for each in rounds)
    results.add("errors at the fixed rate", str(errors), "0", errors == 0)
    medians = {}
    for side, label in (("off", "capacity off"), ("on", "capacity on (full sync running)")):
        values = [run.requests_per_s for run in capacity[side]]
        medians[side] = median(values)
        results.add(
            f"{label}, median of {len(values)}",
            f"{medians[side]:,.0f} req/s ({', '.join(f'{value:.0f}' for value in values)})",
        )
    throughput = medians["on"] / medians["off"]
    results.add("capacity on / off", f"{throughput:.2f}x", ">= 0.9x", throughput >= 0.9)
    for number, each in enumerate(rounds, 1):
        results.note(
            f"Round {number}: p99 {each.off.p(99):.1f} / {each.on.p(99):.1f} ms (off / on); "
            f"jobs on, in the {args.window} s window: {each.syncs.describe()}."
        )
    answered = ", ".join(f"{each.off.answered:,} / {each.on.answered:,}" for each in rounds)
    results.note(
        f"Fixed rate, evenly spaced, from {common.RATE_WORKERS} hey senders started 1/rate apart; "
        f"answered {answered} (off / on, by round) of {rounds[0].off.expected:,} due. "
        f"Capacity with wrk, 1 thread, 8 connections, {args.capacity_seconds} s a server: in each round "
        "off then on, in the further pairs on then off. The load generators run unpinned: "
        "at half capacity hey needs a few % of one core."
    )
    if any(each.syncs.full_runs == 0 for each in rounds):
        results.note("In some round no full sync finished inside the window: make --window longer.")
    return results


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

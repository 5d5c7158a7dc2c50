"""Benchmark 2b: a request's latency next to a sync in the same process, with and without give-way.

``python -m bench.give_way [--users 100000] [--seconds 20] [--rounds 2]``

What benchmark 2 cannot isolate (its figures mix the GIL with the two cores
shared by gunicorn, PostgreSQL and the upstream), measured in one process:
a request-like thread (counted by ``stayy.runtime.activity`` as the middleware
does; six times a ``SELECT 1`` on its own connection plus 0.5 ms of Python,
then 20 ms idle) runs alone, and next to a full sync of every user without
pause (``user_sync_from_upstream``, all records unchanged, started again
when it ends), once with ``give_way`` as shipped and once with it turned off.
The phases alternate for ``--rounds`` rounds; each line is the median of the
rounds' percentiles. Like a gunicorn worker, the process freezes its startup
objects (``stayy.runtime.heap``) before measuring.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from bench import common, load


def request_loop(stop: threading.Event, latencies: list[float]) -> None:
    from django.db import connection, connections

    from stayy.runtime import activity

    try:
        while not stop.is_set():
            started = time.perf_counter()
            activity.request_started()
            try:
                for _ in range(6):
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT 1")
                        cursor.fetchall()
                    until = time.thread_time() + 0.0005
                    while time.thread_time() < until:
                        pass
            finally:
                activity.request_finished()
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.02)
    finally:
        connections.close_all()


def sync_loop(stop: threading.Event) -> None:
    from django.db import connections

    from stayy.runtime import activity
    from users.services import sync as sync_service

    try:
        while not stop.is_set():
            load.full_sync_now()
            # Looked up at each call: the phase switches activity.give_way on and off.
            sync_service.user_sync_from_upstream(
                should_stop=stop.is_set, give_way=lambda: activity.give_way()
            )
    finally:
        connections.close_all()


def phase(*, sync: bool, give_way: bool, seconds: float) -> list[float]:
    from stayy.runtime import activity

    shipped = activity.give_way

    def off(max_wait: float | None = None) -> bool:
        return False

    activity.give_way = shipped if give_way else off
    stop, latencies = threading.Event(), list[float]()
    threads = [threading.Thread(target=request_loop, args=(stop, latencies))]
    if sync:
        threads.append(threading.Thread(target=sync_loop, args=(stop,)))
    try:
        for thread in threads:
            thread.start()
        time.sleep(seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        activity.give_way = shipped
    return latencies


PHASES = {
    "request alone": {"sync": False, "give_way": True},
    "next to a sync, give-way off": {"sync": True, "give_way": False},
    "next to a sync, give-way on": {"sync": True, "give_way": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    stage = load.prepare("give_way", users=args.users)
    from stayy.runtime import heap

    heap.freeze_startup_objects()  # as a gunicorn worker does once the app is loaded
    by_phase: dict[str, list[tuple[float, float, int]]] = {name: [] for name in PHASES}
    try:
        for round_number in range(1, args.rounds + 1):
            for name, options in PHASES.items():
                latencies = phase(seconds=args.seconds, **options)
                cuts = statistics.quantiles(latencies, n=100)
                by_phase[name].append((cuts[49], cuts[98], len(latencies)))
                common.log(f"round {round_number}, {name}: p50 {cuts[49]:.1f} ms, p99 {cuts[98]:.1f} ms")
    finally:
        stage.stop()

    results = common.Results(f"Benchmark 2b: a request next to a sync in one process ({args.users:,} users)")
    p99 = {}
    for name, rows in by_phase.items():
        p50, p99[name] = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
        samples = sum(r[2] for r in rows)
        results.add(name, f"p50 {p50:.1f} ms, p99 {p99[name]:.1f} ms ({samples:,} requests)")
    alone = p99["request alone"]
    for setting in ("off", "on"):
        ratio = p99[f"next to a sync, give-way {setting}"] / alone
        results.add(f"p99 next to a sync / alone, give-way {setting}", f"{ratio:.1f}x")
    results.note(
        f"{args.rounds} alternating rounds of {args.seconds:g} s per phase (medians); the request: "
        "6 x (SELECT 1 + 0.5 ms of Python), then 20 ms idle; the sync: every user, unchanged, no pause."
    )
    results.print()


if __name__ == "__main__":
    main()

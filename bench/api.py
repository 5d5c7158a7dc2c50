"""Benchmark 3, API speed: ``GET /api/users/`` against a hand-written ``values()`` + ``JsonResponse`` view.

``python -m bench.api [--users 100000] [--rounds 3] [--seconds 10]``

Three endpoints run on one gunicorn (2 workers, the service's settings, jobs
off) and answer the same staff token with the same first page of 50 users:
the product (DRF's ``ModelSerializer`` and ``JSONRenderer``), the same view
rendered by orjson (drf-orjson-renderer's ``ORJSONRenderer``), and the
baseline (both in bench/site/views.py). wrk measures each at full load, in
alternating rounds; the ratios of the medians to the baseline are the result.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench import common, load

CONNECTIONS = 8  # 2 workers x 4 threads: every server thread busy, none queued for long


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()

    stage = load.prepare("api", users=args.users)
    server = None
    try:
        server, base = load.gunicorn(stage, "gunicorn", jobs=False)
        endpoints = {
            "product": f"{base}/api/users/",
            "orjson": f"{base}/bench/users-orjson/",
            "baseline": f"{base}/bench/users-baseline/",
        }
        headers = {"Authorization": f"Token {stage.token}"}
        bodies = {name: httpx.get(url, headers=headers, timeout=10).json() for name, url in endpoints.items()}
        ids = {name: [row["id"] for row in body["results"]] for name, body in bodies.items()}
        if (ids["product"], *_count_and_links(bodies["product"])) != (
            ids["baseline"],
            *_count_and_links(bodies["baseline"]),
        ):
            raise SystemExit(f"bench: the endpoints disagree: {ids}")
        if (bodies["orjson"]["results"], *_count_and_links(bodies["orjson"])) != (
            bodies["product"]["results"],
            *_count_and_links(bodies["product"]),
        ):
            raise SystemExit("bench: the orjson rendering answers differently from the product")
        for url in endpoints.values():  # warm-up: connections, caches, lazy imports
            common.run_wrk(url, seconds=3, connections=CONNECTIONS, token=stage.token)
        runs: dict[str, list[common.WrkResult]] = {name: [] for name in endpoints}
        for round_number in range(args.rounds):
            for name, url in endpoints.items():
                result = common.run_wrk(url, seconds=args.seconds, connections=CONNECTIONS, token=stage.token)
                runs[name].append(result)
                common.log(
                    f"round {round_number + 1} {name}: {result.requests_per_s:.0f} req/s, "
                    f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, errors {result.errors}"
                )
    finally:
        if server is not None:
            server.stop()
        stage.stop()

    rps = {name: common.median([run.requests_per_s for run in results]) for name, results in runs.items()}
    errors = sum(run.errors for results in runs.values() for run in results)
    results = common.Results(f"Benchmark 3: API speed (GET /api/users/, 50 per page, {args.users:,} users)")
    labels = {
        "product": "GET /api/users/ (DRF ModelSerializer)",
        "orjson": "the same with orjson rendering",
        "baseline": "baseline values() + JsonResponse",
    }
    for name, label in labels.items():
        p50 = common.median([run.p50_ms for run in runs[name]])
        p99 = common.median([run.p99_ms for run in runs[name]])
        results.add(label, f"{rps[name]:,.0f} req/s (p50 {p50:.1f} ms, p99 {p99:.1f} ms)")
    for name in ("product", "orjson"):
        ratio = rps[name] / rps["baseline"]
        results.add(f"{name} / baseline throughput", f"{ratio:.0%}", ">= 60%", ratio >= 0.6)
    results.add("errors (non-2xx, socket)", str(errors), "0", errors == 0)
    results.note(
        f"wrk, 1 thread, {CONNECTIONS} connections, {args.rounds} alternating rounds of {args.seconds} s per "
        "endpoint (medians); gunicorn 2 workers x 4 threads, jobs off; all answer a staff token with the "
        "same 50 rows, count and links."
    )
    results.print()


def _count_and_links(body: dict[str, Any]) -> tuple[Any, ...]:
    """The count, and the query of each link: each endpoint's links name its own path."""
    links = (body["next"], body["previous"])
    return (body["count"], *(None if link is None else urlsplit(link).query for link in links))


if __name__ == "__main__":
    main()

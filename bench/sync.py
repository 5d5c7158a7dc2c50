"""Benchmark 1, sync throughput: the product's sync against two baselines over the same pages.

``python -m bench.sync [--users 100000] [--rounds 3] [--big-users 999999] [--naive-limit 0]``

One demo upstream serves every variant in turn; each variant runs in a child
process of its own (so its peak RSS is its own) starting from an empty users
table, and reports the seconds spent in the sync (not Django's start-up).
Variants 1 to 3 run ``--rounds`` times, alternating, and the ratios between them
are the medians of each round's (the machine's pace drifts between runs):

1. ``copy`` — fetch + parse the pages with the service's client, ``COPY`` them into a bare table;
2. ``runjobs`` — the job as a user runs it from a terminal,
   ``manage.py runjobs --run users.sync_third_party_users``, at the service's
   defaults (only ``THIRD_PARTY_USERS_URL`` set: no pause between pages outside
   a serving process); its seconds are its run row's, ``started_at`` to
   ``finished_at``, and the command's wall time is shown beside them. It must
   end ``succeeded`` with every live upstream user mirrored, or the benchmark fails;
3. ``product`` — ``user_sync_from_upstream`` called directly into the empty table (the first sync);
4. ``product`` again after the upstream changed 1% of its users (the incremental sync);
5. ``naive`` — the same pages with one ``update_or_create`` per record;
6. ``product`` over ``--big-users`` users, for the peak RSS (streamed pages: about the same as for 100k).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.sync_child import COPY_TABLE


def reset_tables() -> None:
    """Empty users table and cursor, empty copy table, fresh statistics: every variant starts alike."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE users_user RESTART IDENTITY CASCADE")
        cursor.execute("TRUNCATE users_synccursor")
        cursor.execute(f"TRUNCATE {COPY_TABLE}")
        cursor.execute("VACUUM ANALYZE users_user")
        cursor.execute("CHECKPOINT")


def run_child(mode: str, *, upstream_url: str, out: Path, page_size: int, limit: int = 0) -> dict[str, Any]:
    """Run one variant; returns its RESULT (with ``max_rss_mib``, the child's own peak) and ``rate``."""
    env = common.service_env(THIRD_PARTY_USERS_URL=upstream_url)
    argv = [
        common.PYTHON,
        "-m",
        "bench.sync_child",
        mode,
        "--page-size",
        str(page_size),
        "--limit",
        str(limit),
    ]
    log_path = out / f"child-{mode}-{len(list(out.glob('child-*')))}.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            argv, cwd=common.PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=log_file
        )
        assert proc.stdout is not None
        stdout = proc.stdout.read().decode()
        proc.wait()
    result_line = next((line for line in stdout.splitlines() if line.startswith("RESULT ")), None)
    if proc.returncode != 0 or result_line is None:
        raise SystemExit(f"bench: sync child {mode} failed ({proc.returncode}); see {log_path}")
    result: dict[str, Any] = json.loads(result_line[len("RESULT ") :])
    result["rate"] = result["records"] / result["seconds"]
    common.log(
        f"{mode}: {result['records']} records in {result['seconds']:.2f} s "
        f"({result['rate']:.0f}/s), peak RSS {result['max_rss_mib']:.0f} MiB {result.get('counts', '')}"
    )
    return result


SYNC_JOB = "users.sync_third_party_users"


def run_job_command(*, upstream_url: str, out: Path, users: int) -> dict[str, Any]:
    """``manage.py runjobs --run users.sync_third_party_users`` in a child process, at the defaults.

    Beside the environment of every bench process, only ``THIRD_PARTY_USERS_URL``
    is set (any other ``THIRD_PARTY_USERS_*`` of this process is not passed on),
    so the page size, the pause and the rest are the service's defaults. The
    seconds are the run row's (``started_at`` to ``finished_at``); ``wall`` is
    the command's, Django's start-up included. Exits the benchmark unless the
    run succeeded and the users table holds every live upstream user.
    """
    from django.db.models import Max

    from stayy.models import JobRun
    from upstream_demo.dataset import generate
    from users.models import User
    from users.services.sync import SYNC_COUNTERS

    inherited = {key: None for key in os.environ if key.startswith("THIRD_PARTY_USERS_")}
    env = common.service_env(**inherited, THIRD_PARTY_USERS_URL=upstream_url)
    last_run = JobRun.objects.aggregate(last=Max("pk"))["last"] or 0
    log_path = out / "child-runjobs.log"
    argv = [common.PYTHON, "manage.py", "runjobs", "--run", SYNC_JOB]
    started = time.perf_counter()
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(argv, cwd=common.PROJECT_DIR, env=env, stdout=log_file, stderr=log_file)
        proc.wait()
    wall = time.perf_counter() - started
    output = log_path.read_text(errors="replace")
    named = re.search(rf"^{re.escape(SYNC_JOB)}: \w+ in \d+ ms \(run (\d+)\)", output, re.MULTILINE)
    run = JobRun.objects.filter(pk=int(named.group(1))).first() if named else None
    if run is None or run.pk <= last_run or run.job_name != SYNC_JOB:
        raise SystemExit(
            f"bench: runjobs --run {SYNC_JOB} exited {proc.returncode} without a run of its own; "
            f"its output ({log_path}):\n{output[-3000:]}"
        )
    if proc.returncode != 0 or run.status != JobRun.Status.SUCCEEDED:
        raise SystemExit(
            f"bench: runjobs --run {SYNC_JOB}: run {run.pk} is {run.status} (exit {proc.returncode})"
            f"{': ' + run.error if run.error else ''}; see {log_path}"
        )
    assert run.started_at is not None and run.finished_at is not None
    live = {record.id for record in generate(users) if not record.deleted}
    mirrored = set(
        User.objects.filter(source=User.Source.THIRD_PARTY, is_active=True).values_list(
            "external_id", flat=True
        )
    )
    rows = User.objects.count()
    if mirrored != live or rows != len(live):
        raise SystemExit(
            f"bench: after runjobs --run {SYNC_JOB} the users table holds {rows:,} rows, "
            f"{len(mirrored & live):,} of the {len(live):,} live upstream users "
            f"({len(live - mirrored):,} missing, {len(mirrored - live):,} unknown); see {log_path}"
        )
    counts = run.summary
    result: dict[str, Any] = {
        "records": sum(value for key, value in counts.items() if key in SYNC_COUNTERS[1:]),
        "counts": counts,
        "seconds": (run.finished_at - run.started_at).total_seconds(),
        "duration_ms": run.duration_ms,
        "wall": wall,
        "run": run.pk,
    }
    result["rate"] = result["records"] / result["seconds"]
    common.log(
        f"runjobs: run {run.pk} {run.status}, {result['records']} records in {result['seconds']:.2f} s "
        f"({result['rate']:.0f}/s; command {wall:.2f} s) {counts}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of variants 1-3, alternating.")
    parser.add_argument(
        "--big-users", type=int, default=999_999, help="Users for the RSS comparison (0: skip)."
    )
    parser.add_argument("--naive-limit", type=int, default=0, help="Records for the naive baseline (0: all).")
    parser.add_argument("--changed-share", type=float, default=0.01)
    parser.add_argument(
        "--page-size",
        type=int,
        default=500,
        help="As the job uses (the service default); the runjobs variant always runs the job's own.",
    )
    args = parser.parse_args()

    out = common.run_dir("sync")
    common.log(f"logs in {out}")
    common.recreate_database()
    common.setup_django()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {COPY_TABLE} (external_id text, email text, display_name text,"
            " updated_at timestamptz, deleted boolean)"
        )
    upstream, url = common.start_upstream(args.users, out=out)
    try:
        child = {"upstream_url": url, "out": out, "page_size": args.page_size}
        rounds: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
        for _ in range(args.rounds):
            reset_tables()
            copy = run_child("copy", **child)
            reset_tables()
            job = run_job_command(upstream_url=url, out=out, users=args.users)
            reset_tables()
            first = run_child("product", **child)  # the incremental sync below starts from its table
            rounds.append((copy, job, first))
        touched = common.upstream_post(url, "/v1/_admin/touch", {"share": args.changed_share, "seed": 1})
        incremental = run_child("product", **child)
        reset_tables()
        common.upstream_post(url, "/v1/_admin/reset", {})
        naive = run_child("naive", **child, limit=args.naive_limit)
        big = None
        if args.big_users:
            reset_tables()
            common.upstream_post(url, "/v1/_admin/reset", {"users": args.big_users})
            big = run_child("product", **child)
    finally:
        upstream.stop()

    results = common.Results(
        f"Benchmark 1: sync throughput ({args.users:,} upstream users, pages of {args.page_size})"
    )

    def rates(variant: int) -> str:
        values = [one[variant]["rate"] for one in rounds]
        return f"{common.median(values):,.0f} rec/s ({', '.join(f'{value:,.0f}' for value in values)})"

    def ratio(variant: int) -> tuple[float, str]:
        values = [one[variant]["rate"] / one[0]["rate"] for one in rounds]
        return common.median(values), ", ".join(f"{value:.0%}" for value in values)

    results.add("product first sync (median of rounds)", rates(2))
    results.add("runjobs --run, defaults (median of rounds)", rates(1))
    results.add("baseline (b) fetch + COPY (median of rounds)", rates(0))
    results.add(
        "baseline (a) naive update_or_create", f"{naive['rate']:,.0f} rec/s ({naive['records']:,} records)"
    )
    vs_naive = common.median([one[2]["rate"] for one in rounds]) / naive["rate"]
    results.add("product / naive", f"{vs_naive:.1f}x", ">= 25x", vs_naive >= 25)
    vs_copy, each = ratio(2)
    results.add("product / fetch+COPY", f"{vs_copy:.0%} ({each})", ">= 60%", vs_copy >= 0.6)
    job_vs_copy, each = ratio(1)
    results.add("runjobs --run / fetch+COPY", f"{job_vs_copy:.0%} ({each})", ">= 40%", job_vs_copy >= 0.4)
    speedup = first["seconds"] / incremental["seconds"]
    results.add(
        f"incremental after {len(touched['touched']):,} changed",
        f"{incremental['seconds']:.2f} s, {incremental['counts']['updated']:,} updated",
    )
    results.add("first sync / incremental", f"{speedup:.0f}x faster", ">= 20x", speedup >= 20)
    results.add("peak RSS, 100k sync", f"{first['max_rss_mib']:.0f} MiB")
    if big is not None:
        growth = big["max_rss_mib"] / first["max_rss_mib"]
        results.add(
            f"peak RSS, {args.big_users:,} sync",
            f"{big['max_rss_mib']:.0f} MiB ({big['rate']:,.0f} rec/s)",
        )
        results.add("peak RSS big / 100k", f"{growth:.2f}", "about 1 (<= 1.25)", growth <= 1.25)
    results.note(
        "Variants run one after another against the same demo upstream, each in its own process "
        "from an empty table; the baselines fetch and parse with the service's own client, so the ratios "
        f"compare what is done with the pages. Fetch + COPY, runjobs and the product ran in {args.rounds} "
        "alternating rounds (rates and ratios per round in brackets; the ratios are medians of the rounds')."
    )
    results.note(
        f"runjobs --run: `manage.py runjobs --run {SYNC_JOB}` with only THIRD_PARTY_USERS_URL set "
        f"(runs {', '.join(str(one[1]['run']) for one in rounds)}, each succeeded with "
        f"{job['counts'].get('created', 0):,} created); its time is the run "
        "row's, started_at to finished_at; the command's wall time adds Django's start-up."
    )
    if args.naive_limit:
        results.note(
            f"The naive baseline ran over the first {naive['records']:,} records only (rate compared)."
        )
    results.print()


if __name__ == "__main__":
    main()

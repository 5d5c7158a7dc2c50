#!/usr/bin/env python
"""Full-length fault runs against real processes: PostgreSQL restarts, Redis outages, killed workers, soak.

Each run starts its own PostgreSQL cluster (``initdb`` in a temporary
directory) and its own ``redis-server`` on free ports, so faults never touch
the servers of your environment, then gunicorn with embedded jobs on, HTTP
load, and the fault. It prints the figures of each run (load held, faults
injected, duplicates, lost runs, errors) and the properties that did not
hold. The scenarios are :mod:`harness.faults.scenarios`; the test suite runs
them short (``tests/faults/``).

Exit status: 0 every property held, 1 some did not, 2 the run could not start.
See ``scripts/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
RUNS = ("postgres-restart", "redis-outage", "worker-kills", "soak")


def _django_setup() -> None:
    sys.path.insert(0, str(PROJECT_DIR))
    os.chdir(PROJECT_DIR)
    # This process only reads the private database (through an alias of its own); its default
    # database is never used. Debug lets it start without a secret key; the servers it starts
    # run with debug off.
    from harness.cluster import SETTINGS_MODULE

    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    os.environ.setdefault("DJANGO_DEBUG", "1")
    import django

    django.setup()


def _run(name: str, args: argparse.Namespace, postgres: Any, workdir: Path) -> Any:
    from harness.faults import scenarios
    from harness.faults.rig import close_rig, open_rig

    reports = []
    variants = ["killed", "hung"] if name == "redis-outage" else [""]
    for variant in variants:
        rundir = workdir / (name + (f"-{variant}" if variant else ""))
        rundir.mkdir()
        if not postgres.running():
            postgres.start()
        rig = open_rig(postgres, workdir=rundir)
        try:
            if name == "postgres-restart":
                report = scenarios.postgres_restart(rig, restarts=args.restarts, down=args.down)
            elif name == "redis-outage":
                report = scenarios.redis_outage(rig, outage=args.outage, how=variant, workers=3)
            elif name == "worker-kills":
                report = scenarios.worker_kills(rig, seconds=args.kill_seconds, workers=3, seed=args.seed)
            else:
                report = scenarios.soak(rig, minutes=args.soak_minutes, warmup=args.warmup, workers=3)
        finally:
            close_rig(rig)
        print(report.text(), flush=True)
        print(f"  logs: {rundir}\n", flush=True)
        reports.append(report)
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", choices=[*RUNS, "all"], default=["all"], help="which runs (all)")
    parser.add_argument("--restarts", type=int, default=5, help="PostgreSQL restarts (5)")
    parser.add_argument("--down", type=float, default=3.0, help="seconds PostgreSQL stays down each time (3)")
    parser.add_argument("--outage", type=float, default=30.0, help="seconds Redis is killed, then hung (30)")
    parser.add_argument("--kill-seconds", type=float, default=60.0, help="seconds of worker kills (60)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="seed of the worker kills")
    parser.add_argument("--soak-minutes", type=float, default=10.0, help="length of the soak (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="soak minutes not judged (2)")
    parser.add_argument("--json", type=Path, help="also write the reports to this file")
    args = parser.parse_args(argv)
    if args.restarts < 1 or args.outage < 5 or args.kill_seconds < 5 or args.soak_minutes <= args.warmup:
        parser.error("need --restarts >= 1, --outage and --kill-seconds >= 5, --soak-minutes > --warmup")
    names = list(RUNS) if "all" in args.runs else list(dict.fromkeys(args.runs))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the finally blocks stop what we started

    _django_setup()
    from harness.faults.rig import prepare_template
    from harness.faults.servers import PostgresServer

    workdir = Path(tempfile.mkdtemp(prefix="stayy-faults-"))
    print(f"faults: {', '.join(names)}; logs in {workdir}", flush=True)
    postgres = PostgresServer()
    reports = []
    started = datetime.now(UTC)
    try:
        try:
            postgres.init()
            postgres.start()
            prepare_template(postgres)
        except Exception as exc:
            print(f"faults: could not start a private PostgreSQL: {exc}", file=sys.stderr)
            return 2
        for name in names:
            reports += _run(name, args, postgres, workdir)
    finally:
        postgres.destroy()
    failed = [r.scenario for r in reports if not r.ok]
    print("result: " + ("OK" if not failed else f"FAILED ({', '.join(failed)})"))
    if args.json:
        body = {
            "started": started.isoformat(timespec="seconds"),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "cpus": os.cpu_count(),
            "reports": [
                {"scenario": r.scenario, "figures": r.figures, "problems": r.problems, "samples": r.series}
                for r in reports
            ],
        }
        args.json.write_text(json.dumps(body, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

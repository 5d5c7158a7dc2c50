"""The fault scenarios, run short by the tests and full length by ``scripts/faults.py``.

Each scenario starts gunicorn with embedded jobs on (``JOB_ENABLE=1``, the
lease in the rig's private Redis) against the rig's private PostgreSQL
database, puts HTTP load on it, injects its fault, and returns a
:class:`Report`: the figures of the run and the list of properties that did
not hold (empty: all held). Tests assert the list is empty; the script prints
both. Time bounds derive from :mod:`harness.cluster`'s TTL, stale bound and
margin.

* :func:`postgres_restart` — PostgreSQL restarted while a job runs.
* :func:`redis_outage` — Redis killed or hung for a while.
* :func:`worker_kills` — ``kill -9`` of random workers every few seconds.
* :func:`soak` — load and every job at short intervals; RSS and connections.
"""

from __future__ import annotations

import functools
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError
from django.utils import timezone

from harness.cluster import MARGIN, PURGE, REAP_SLACK, SLOW, STALE_AFTER, TTL
from harness.cluster.evidence import (
    assert_executed_once_per_tick,
    assert_no_concurrent_executions,
    exec_intervals,
    live_leader_pid,
    logged_starts,
    schedule_since,
    scheduled_rows,
    tick_accounting,
)
from harness.cluster.processes import Gunicorn, ServiceProcess
from harness.faults import procstats
from harness.faults.load import Answer, HttpLoad, failures_outside, rate, statuses
from harness.faults.rig import ALIAS, PRODUCTION, Rig
from harness.ports import free_port
from harness.waiting import Timeout, wait_until
from stayy.models import JobRun

REFRESH = "users.refresh_user_stats"
SYNC = "users.sync_third_party_users"


@dataclass
class Report:
    scenario: str
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: Raw samples (the soak's), for the JSON output only.
    series: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def check(self, holds: bool, problem: str) -> None:
        if not holds:
            self.problems.append(problem)

    def check_call(self, check: Callable[[], object]) -> None:
        """Run a harness assertion; a failed one becomes a problem of the report."""
        try:
            check()
        except AssertionError as exc:
            self.problems.append(str(exc))

    def text(self) -> str:
        lines = [f"[{self.scenario}] " + ("OK" if self.ok else "FAILED")]
        lines += [f"  {name}: {value}" for name, value in self.figures.items()]
        lines += [f"  PROBLEM: {problem}" for problem in self.problems]
        return "\n".join(lines)


def _say(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} {message}\n")


def _runs() -> Any:
    return JobRun.objects.using(ALIAS)


def _start_web(rig: Rig, *, workers: int, overrides: dict[str, Any], **extra: str) -> Gunicorn:
    env = {**rig.cluster.env(redis_url=rig.redis.url, overrides=overrides), **PRODUCTION, **extra}
    web = rig.cluster.gunicorn("web", env=env, workers=workers)
    web.wait_ready(workers=workers)
    wait_until(
        lambda: live_leader_pid(rig.cluster.job_name, using=ALIAS),
        timeout=TTL + MARGIN,
        message="nobody leads",
    )
    wait_until(
        lambda: _runs().filter(job_name=PURGE, status="succeeded").count() >= 2,
        timeout=2 * MARGIN,
        message="the purge job does not run",
    )
    return web


def _account_ticks(
    report: Report, rig: Rig, jobs: list[str], *, start: datetime, end: datetime, every: int = 1
) -> None:
    """Every tick of ``jobs`` in the window left one row, and executed at most once, by its rows,
    the processes' "run started" lines and (the slow job) the handler's own execution log."""
    by_status: dict[str, dict[str, int]] = {}
    lost = two_rows = twice = 0
    for job in jobs:
        gaps, duplicates = tick_accounting(job, start=start, end=end, every=every, using=ALIAS)
        report.check(not duplicates, f"{job}: ticks with two rows: {duplicates}")
        report.check(not gaps, f"{job}: ticks without a row (lost): {[t.isoformat() for t in gaps]}")
        report.check_call(
            functools.partial(
                assert_executed_once_per_tick, rig.cluster, job, start=start, end=end, using=ALIAS
            )
        )
        rows = scheduled_rows(job, start=start, end=end, using=ALIAS)
        by_status[job] = dict(Counter(r.status for r in rows))
        lost += len(gaps)
        two_rows += len(duplicates)
        twice += sum(
            1
            for (trigger, when), n in logged_starts(rig.cluster.records(), job).items()
            if trigger == "schedule" and n > 1 and start <= datetime.fromisoformat(when) <= end
        )
    if SLOW in jobs:
        execs = Counter(
            e["scheduled_for"]
            for e in rig.cluster.exec_entries()
            if e["event"] == "start" and e["trigger"] == "schedule"
        )
        twice += sum(1 for when, n in execs.items() if n > 1 and start <= datetime.fromisoformat(when) <= end)
    seconds = (end - start).total_seconds()
    report.figures["window"] = f"{start:%H:%M:%S}-{end:%H:%M:%S} UTC ({seconds:.0f} s)"
    report.figures["ticks by job and status"] = by_status
    report.figures["ticks lost (no row)"] = lost
    report.figures["ticks with two rows"] = two_rows
    report.figures["ticks executed twice (log lines, handler's own log)"] = twice


def _http_figures(report: Report, answers: list[Answer]) -> None:
    report.figures["requests"] = len(answers)
    report.figures["requests/s"] = round(rate(answers), 1)
    report.figures["answers by status"] = statuses(answers)
    failed = Counter(f"{a.path} {a.status or a.error.split(':')[0]}" for a in answers if not a.ok)
    if failed:
        report.figures["failed answers by path"] = dict(sorted(failed.items()))
    if answers:
        report.figures["slowest answer (s)"] = round(max(a.end - a.start for a in answers), 2)


def _no_run_left_running(report: Report, *, stale_before: datetime) -> None:
    stuck = list(
        _runs().filter(status="running", heartbeat_at__lt=stale_before).values_list("pk", "job_name", "pid")
    )
    report.figures["runs left running"] = len(stuck)
    report.check(not stuck, f"runs left running without a heartbeat: {stuck}")


# --- PostgreSQL restarted while a job runs, under HTTP load -----------------------------------


def _restart_once(rig: Rig, report: Report, *, n: int, down: float) -> tuple[float, float] | None:
    """Restart PostgreSQL while the slow job executes; the window it was down, or ``None`` if the
    jobs did not come back. Records how long the jobs took to resume and how the run ended."""
    in_flight = wait_until(
        lambda: (
            _runs()
            .filter(job_name=SLOW, status="running", started_at__gte=timezone.now() - timedelta(seconds=0.5))
            .first()
        ),
        timeout=6,
        message="no fresh run of the slow job",
    )
    began = time.monotonic()
    rig.postgres.stop()
    time.sleep(down)
    rig.postgres.start()
    back = time.monotonic()
    rig.reconnect()
    back_at = timezone.now()
    _say(f"postgres restart {n}: down {back - began:.2f} s")
    try:
        wait_until(
            lambda: _runs().filter(job_name=PURGE, status="succeeded", started_at__gt=back_at).exists(),
            timeout=TTL + 3 * MARGIN,
        )
        report.figures["jobs resumed after (s)"].append(round(time.monotonic() - back, 2))
        wait_until(
            lambda: (
                _runs()
                .filter(job_name=SLOW, status="succeeded", started_at__gt=back_at, pk__gt=in_flight.pk)
                .exists()
            ),
            timeout=TTL + 3 + 3 * MARGIN,
        )
    except Timeout:
        report.problems.append(f"restart {n}: jobs did not resume (no successful run after it)")
        return None
    try:
        wait_until(
            lambda: _runs().filter(pk=in_flight.pk, active=False).exclude(status="running").exists(),
            timeout=STALE_AFTER + REAP_SLACK + MARGIN,
        )
    except Timeout:
        report.problems.append(f"run {in_flight.pk}, in flight during restart {n}, is still open")
    in_flight.refresh_from_db(using=ALIAS)
    outcomes = report.figures["runs in flight ended"]
    outcomes[in_flight.status] = outcomes.get(in_flight.status, 0) + 1
    report.check(
        in_flight.status in ("succeeded", "failed"),
        f"run {in_flight.pk} in flight during restart {n} ended {in_flight.status}",
    )
    return began, back


def postgres_restart(rig: Rig, *, restarts: int = 1, down: float = 0.0, workers: int = 2) -> Report:
    report = Report("postgres restart")
    report.figures.update({"jobs resumed after (s)": [], "runs in flight ended": {}})
    web = _start_web(rig, workers=workers, overrides={SLOW: {"enabled": True}}, STAYY_TEST_SLOW_SECONDS="3")
    token = rig.api_token()
    load = HttpLoad([web.url], ["/api/users/me/", "/api/users/stats/", "/healthz"], token=token, threads=3)
    load.start()
    windows: list[tuple[float, float]] = []
    try:
        for n in range(1, restarts + 1):
            window = _restart_once(rig, report, n=n, down=down)
            if window is None:
                break
            windows.append(window)
        time.sleep(2)  # requests well after the last restart must succeed
    finally:
        answers = load.stop()

    report.figures["restarts"] = len(windows)
    report.figures["restart windows (s)"] = [round(end - start, 2) for start, end in windows]
    _http_figures(report, answers)
    in_windows = [a for a in answers if not a.ok and a not in failures_outside(answers, windows)]
    report.figures["failed requests during restarts"] = len(in_windows)
    outside = failures_outside(answers, windows)
    report.figures["failed requests outside restarts"] = len(outside)
    report.check(
        not outside,
        f"{len(outside)} request(s) failed outside the restart windows, e.g. "
        f"{[(a.path, a.status, a.error) for a in outside[:3]]}",
    )
    report.check(
        all(a.status == 503 for a in in_windows if a.status),
        f"requests during a restart answered other than 503: {statuses(in_windows)}",
    )
    after = [a for a in answers if windows and a.start > windows[-1][1]]
    report.check(bool(after) and all(a.ok for a in after), "requests after the last restart did not succeed")
    recoveries = report.figures["jobs resumed after (s)"]
    report.check(
        all(r <= TTL + 2 * MARGIN for r in recoveries), f"jobs resumed slowly after a restart: {recoveries}"
    )
    _no_run_left_running(report, stale_before=timezone.now() - timedelta(seconds=STALE_AFTER))
    report.check(web.running() and len(web.workers()) == workers, "gunicorn lost workers")
    tracebacks = [
        r["message"]
        for r in rig.cluster.records()
        if r.get("logger", "").startswith("stayy.jobs") and r.get("level") == "ERROR" and r.get("exc_info")
    ]
    report.check(not tracebacks, f"the job server logged tracebacks: {tracebacks[:3]}")
    return report


# --- Redis stopped (killed or hung) under a 3-worker gunicorn -----------------------------------


def redis_outage(rig: Rig, *, outage: float = 10.0, how: str = "killed", workers: int = 3) -> Report:
    report = Report(f"redis outage ({how})")
    web = _start_web(rig, workers=workers, overrides={SLOW: {"enabled": True}}, STAYY_TEST_SLOW_SECONDS="0.5")
    start = max(schedule_since(PURGE, using=ALIAS), schedule_since(SLOW, using=ALIAS)) + timedelta(seconds=1)
    job_servers = web.workers()
    load = HttpLoad(
        [web.url], ["/api/users/me/", "/api/users/stats/", "/healthz"], token=rig.api_token(), threads=3
    )
    load.start()
    try:
        time.sleep(1)
        if how == "killed":
            rig.redis.kill()
        else:  # the port still accepts connections, nothing answers: every call times out
            rig.redis.pause()
        down_at = timezone.now()
        down = time.monotonic()
        _say(f"redis {how} for {outage:g} s")
        time.sleep(outage)
        # Fail safe: once the lease cannot be renewed, nothing executes.
        late = list(
            _runs()
            .filter(
                trigger="schedule",
                status__in=("succeeded", "failed", "running", "timed_out"),
                started_at__gt=down_at + timedelta(seconds=TTL),
            )
            .values_list("job_name", "scheduled_for", "pid")
        )
        report.check(not late, f"ran without a lease while Redis was down: {late}")
        if how == "killed":
            rig.redis.start()
        else:
            rig.redis.resume()
        up_at = timezone.now()
        up = time.monotonic()
        try:
            wait_until(
                lambda: _runs().filter(job_name=PURGE, status="succeeded", started_at__gt=up_at).exists(),
                timeout=TTL + 2 * MARGIN,
            )
            resumed = time.monotonic() - up
        except Timeout:
            resumed = float("inf")
        time.sleep(2)  # every process notices the recovery; ticks in flight land
    finally:
        answers = load.stop()

    report.figures["outage (s)"] = round(up - down, 1)
    report.figures["jobs resumed after (s)"] = round(resumed, 2)
    # A candidate polls every second; a hung Redis runs the SET a candidate timed out on when it
    # resumes, and that candidate takes the lease it holds rather than wait for its TTL.
    report.check(resumed <= 1 + 1.5, f"jobs resumed {resumed:.2f} s after Redis came back (TTL {TTL:g} s)")
    _http_figures(report, answers)
    during = [a for a in answers if a.start >= down and a.end <= up]
    report.figures["requests during the outage"] = len(during)
    failed = [a for a in answers if not a.ok]
    report.check(
        bool(during) and not failed,
        f"HTTP did not keep serving: {len(during)} requests during the outage, failed: "
        f"{[(a.path, a.status, a.error) for a in failed[:3]]}",
    )
    records = [r for r in rig.cluster.records() if r.get("logger") == "stayy.jobs"]
    problems = Counter(r["pid"] for r in records if r["message"].endswith("not scheduling until it recovers"))
    recoveries = Counter(r["pid"] for r in records if r["message"].endswith("dependencies reachable again"))
    report.figures["outage log lines per process"] = dict(problems)
    report.check(
        set(problems) == job_servers, f"processes that logged the outage: {problems}, all: {job_servers}"
    )
    report.check(all(n == 1 for n in problems.values()), f"outage logged repeatedly: {problems}")
    report.check(recoveries == problems, f"recoveries logged {dict(recoveries)}, problems {dict(problems)}")
    _account_ticks(report, rig, [PURGE, SLOW], start=start, end=timezone.now() - timedelta(seconds=1.5))
    report.check_call(lambda: assert_no_concurrent_executions(exec_intervals(rig.cluster)))
    _no_run_left_running(report, stale_before=timezone.now() - timedelta(seconds=STALE_AFTER))
    return report


# --- kill -9 of random workers every few seconds, with a 1-second job ----------------------------


def worker_kills(
    rig: Rig,
    *,
    seconds: float = 20.0,
    every: tuple[float, float] = (2.0, 4.0),
    workers: int = 3,
    seed: int = 0,
) -> Report:
    report = Report("worker kills")
    web = _start_web(rig, workers=workers, overrides={SLOW: {"enabled": True}}, STAYY_TEST_SLOW_SECONDS="1")
    start = max(schedule_since(PURGE, using=ALIAS), schedule_since(SLOW, using=ALIAS)) + timedelta(seconds=1)
    load = HttpLoad([web.url], ["/api/users/me/", "/healthz"], token=rig.api_token(), threads=2)
    load.start()
    rng = random.Random(seed)
    killed_at: dict[int, float] = {}
    leaders_killed = 0
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(*every))
            alive = sorted(web.workers() - set(killed_at))
            if not alive:
                continue
            victim = rng.choice(alive)
            leader = live_leader_pid(rig.cluster.job_name, using=ALIAS)
            os.kill(victim, signal.SIGKILL)
            killed_at[victim] = time.time()
            leaders_killed += victim == leader
        _say(f"killed {len(killed_at)} workers ({leaders_killed} leading)")
        # Let the cluster settle: a live leader, and the runs of killed workers closed as lost.
        after_kills = timezone.now()
        try:
            wait_until(
                lambda: (
                    _runs().filter(job_name=PURGE, status="succeeded", started_at__gt=after_kills).exists()
                ),
                timeout=TTL + 3 * MARGIN,
            )
        except Timeout:
            report.problems.append("jobs did not resume after the last kill")
        try:
            wait_until(
                lambda: not _runs().filter(status="running", pid__in=list(killed_at)).exists(),
                timeout=STALE_AFTER + REAP_SLACK + 2 * MARGIN,
            )
        except Timeout:
            report.problems.append("runs of killed workers were not closed")
        end = timezone.now() - timedelta(seconds=1.5)
        time.sleep(1)
    finally:
        answers = load.stop()

    report.figures["workers killed"] = len(killed_at)
    report.figures["leaders killed"] = leaders_killed
    lost = _runs().filter(pid__in=list(killed_at), error__startswith="process lost").count()
    report.figures["runs closed as 'process lost'"] = lost
    _account_ticks(report, rig, [PURGE, SLOW], start=start, end=end)
    report.check_call(
        lambda: assert_no_concurrent_executions(exec_intervals(rig.cluster, killed_at=killed_at))
    )
    _no_run_left_running(report, stale_before=timezone.now() - timedelta(seconds=STALE_AFTER))
    _http_figures(report, answers)  # requests to a worker killed mid-answer fail: a figure, not a rule
    try:
        web.wait_ready(workers=workers, timeout=30)
    except AssertionError:
        report.problems.append("gunicorn did not get back to its workers")
    report.check(web.request("GET", "/healthz").status == 200, "gunicorn does not serve after the kills")
    return report


# --- soak: load and every job at short intervals; memory and connections ----------------------


def soak(
    rig: Rig, *, minutes: float = 10.0, warmup: float = 2.0, sample_every: float = 10.0, workers: int = 3
) -> Report:
    report = Report("soak")
    upstream_port = free_port()
    upstream = ServiceProcess(
        "upstream",
        [sys.executable, "manage.py", "demo_upstream", "--port", str(upstream_port), "--users", "2000"],
        env={**rig.cluster.env(redis_url=rig.redis.url), "JOB_ENABLE": "0", **PRODUCTION},
        log_path=rig.cluster.tmp_path / "upstream.log",
    )
    rig.cluster.processes.append(upstream)
    overrides = {
        PURGE: {"interval": 1},
        REFRESH: {"interval": 5},
        SYNC: {"interval": 20, "timeout": 60},
    }
    threads = 4
    web = _start_web(
        rig,
        workers=workers,
        overrides=overrides,
        THIRD_PARTY_USERS_URL=f"http://127.0.0.1:{upstream_port}",
        GUNICORN_THREADS=str(threads),
    )
    # docs/configuration.md's sizing: a worker keeps one connection per thread and per running job, plus 2;
    # in Redis, one more: the lease's own client.
    bounds = {"pg": threads + len(overrides) + 2, "redis": threads + len(overrides) + 3}
    staff = rig.api_token(staff=True)
    paths = ["/api/users/", "/api/users/me/", "/api/users/stats/", "/api/jobs/", "/healthz", "/readyz"]
    load = HttpLoad([web.url], paths, token=staff, threads=4, pause=0.05)
    began = time.monotonic()
    began_at = timezone.now()
    load.start()
    ports = [rig.postgres.port, rig.redis.port]
    samples: list[dict[str, Any]] = []
    try:
        while time.monotonic() - began < minutes * 60:
            time.sleep(sample_every)
            pids = sorted(web.workers())
            conns = procstats.connections(pids, ports)
            try:
                backends = _pg_backends(rig)
            except DatabaseError:
                backends = -1
            samples.append(
                {
                    "t": time.monotonic() - began,
                    "rss": {pid: procstats.rss_bytes(pid) for pid in pids},
                    "pg": {pid: conns[pid][rig.postgres.port] for pid in pids},
                    "redis": {pid: conns[pid][rig.redis.port] for pid in pids},
                    "backends": backends,
                }
            )
            _say(
                f"soak {samples[-1]['t']:.0f} s: rss MB "
                f"{[round((samples[-1]['rss'][p] or 0) / 2**20) for p in pids]}, "
                f"pg {list(samples[-1]['pg'].values())}, redis {list(samples[-1]['redis'].values())}, "
                f"backends {backends}, requests {len(load.snapshot())}"
            )
    finally:
        answers = load.stop()

    report.series = samples
    _http_figures(report, answers)
    failed = [a for a in answers if not a.ok]
    report.check(
        not failed, f"{len(failed)} request(s) failed, e.g. {[(a.path, a.status) for a in failed[:3]]}"
    )
    steady = [s for s in samples if s["t"] >= warmup * 60]
    report.figures["minutes"] = round((time.monotonic() - began) / 60, 1)
    report.figures["samples after warm-up"] = len(steady)
    pids = sorted({pid for s in steady for pid in s["rss"]})
    report.check(
        all(all(pid in s["rss"] for s in steady) for pid in pids), f"workers changed during the soak: {pids}"
    )
    growth: dict[int, float] = {}
    for pid in pids:
        points = [(s["t"], float(s["rss"][pid])) for s in steady if s["rss"].get(pid)]
        growth[pid] = round(procstats.growth_per_minute(points), 3)
        first, last = points[0][1] / 2**20, points[-1][1] / 2**20
        report.figures[f"worker {pid} RSS MB (first, last after warm-up)"] = (round(first, 1), round(last, 1))
    report.figures["RSS growth %/min per worker"] = growth
    report.check(all(g < 1.0 for g in growth.values()), f"RSS grows 1 %/min or more: {growth}")
    for kind in ("pg", "redis"):
        per_pid = {pid: [s[kind][pid] for s in steady if pid in s[kind]] for pid in pids}
        report.figures[f"{kind} connections per worker (min-max)"] = {
            pid: f"{min(v)}-{max(v)}" for pid, v in per_pid.items() if v
        }
        report.check(all(procstats.flat(v) for v in per_pid.values()), f"{kind} connections grow: {per_pid}")
        highest = max((max(v) for v in per_pid.values() if v), default=0)
        report.check(
            highest <= bounds[kind], f"a worker held {highest} {kind} connections (bound {bounds[kind]})"
        )
    counts = [s["backends"] for s in steady]
    report.figures["PostgreSQL backends of the database (min-max)"] = f"{min(counts)}-{max(counts)}"
    report.check(procstats.flat(counts), f"PostgreSQL backends grow: {counts}")
    runs = Counter(_runs().filter(created_at__gte=began_at).values_list("job_name", "status"))
    report.figures["runs by job and status"] = {
        f"{job} {status}": n for (job, status), n in sorted(runs.items())
    }
    bad = {k: n for k, n in runs.items() if k[1] in ("failed", "timed_out")}
    report.check(not bad, f"runs failed: {bad}")
    end = timezone.now() - timedelta(seconds=2)
    start = began_at + timedelta(seconds=warmup * 60)
    for job, every in ((PURGE, 1), (REFRESH, 5), (SYNC, 20)):
        gaps, duplicates = tick_accounting(job, start=start, end=end, every=every, using=ALIAS)
        report.check(not gaps and not duplicates, f"{job}: lost ticks {gaps}, duplicated {duplicates}")
    report.check_call(
        lambda: assert_executed_once_per_tick(rig.cluster, PURGE, start=start, end=end, using=ALIAS)
    )
    # Leadership changes while every worker lives are false failovers (a renewal came too late).
    terms = [r for r in rig.cluster.records() if str(r.get("message", "")).startswith("became leader")]
    report.figures["leader terms"] = len(terms)
    report.check(len(terms) == 1, f"the lease changed hands {len(terms) - 1} time(s) with every worker alive")
    return report


def _pg_backends(rig: Rig) -> int:
    from django.db import connections

    with connections[ALIAS].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return int(cursor.fetchone()[0]) - 1  # this process's own connection

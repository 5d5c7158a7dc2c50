"""What every benchmark needs: the bench database, child processes, load generators, percentiles, results.

The benchmarks start real processes (the demo upstream, gunicorn, sync
children) against their own PostgreSQL database (``BENCH_DATABASE_URL``,
default ``stayy_bench``) and Redis database (``BENCH_REDIS_URL``, default
db 15), so they never touch the data of the tests or of a developer.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from harness import processes as harness_processes
from harness.env import child_env
from harness.ports import free_port as free_port

PROJECT_DIR = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
OUT_DIR = Path(os.environ.get("BENCH_OUT_DIR", Path(tempfile.gettempdir()) / "stayy-bench"))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://root@127.0.0.1:5432/stayy_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
SETTINGS_MODULE = "bench.site.settings"


# --- output ---------------------------------------------------------------------


def log(message: str) -> None:
    """Progress on stderr (the results block goes to stdout)."""
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    sys.stderr.write(f"[{stamp}] {message}\n")
    sys.stderr.flush()


def run_dir(name: str) -> Path:
    """A fresh folder for this run's logs (``$BENCH_OUT_DIR``, default /tmp/stayy-bench/<name>-<time>/)."""
    path = OUT_DIR / f"{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = model or platform.machine()
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Python {platform.python_version()}"


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} / {five:.2f}"


@dataclass
class Results:
    """The block each benchmark prints at the end, ready to paste into bench/README.md."""

    title: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, metric: str, value: str, target: str = "", passed: bool | None = None) -> None:
        verdict = "" if passed is None else ("PASS" if passed else "MISS")
        self.rows.append((metric, value, target, verdict))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def render(self) -> str:
        header = ("metric", "measured", "target", "")
        widths = [max(len(row[i]) for row in [header, *self.rows]) for i in range(4)]
        lines = [
            f"### {self.title}",
            "",
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}, load average at the end {load_average()}",
            "",
            "```",
        ]
        for row in [header, *self.rows]:
            lines.append(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            )
        lines.append("```")
        lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines)

    def print(self) -> None:
        sys.stdout.write("\n" + self.render() + "\n")
        sys.stdout.flush()


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


# --- database -------------------------------------------------------------------


def recreate_database(url: str = DATABASE_URL) -> None:
    """Drop and create the bench database (it holds nothing but benchmark data)."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"\w+", name) or "bench" not in name:
        raise SystemExit(f"bench: refusing to recreate database {name!r}: its name must contain 'bench'")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def service_env(**overrides: str | None) -> dict[str, str]:
    """Environment of the service processes the benchmarks start (production-like: debug off)."""
    values: dict[str, str | None] = {
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-anything-else-0123456789",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "JOB_NAME": "stayy-bench",
        "LOG_LEVEL": "WARNING",
    }
    values.update(overrides)
    return child_env(values, drop=("JOB_", "GUNICORN_"))


def setup_django(**overrides: str | None) -> None:
    """Configure this (driver) process like the service processes, then migrate the bench database."""
    os.environ.update({key: value for key, value in service_env(**overrides).items() if value is not None})
    for key, value in overrides.items():
        if value is None:
            os.environ.pop(key, None)
    sys.path.insert(0, str(PROJECT_DIR))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def staff_token() -> str:
    """A new API token of the bench superuser (created on first use) in the bench database."""
    from knox.models import AuthToken

    from users.models import User

    user, _ = User.objects.get_or_create(
        username="bench-staff",
        defaults={"email": "bench-staff@bench.example", "is_staff": True, "is_superuser": True},
    )
    _, token = AuthToken.objects.create(user=user)
    return str(token)


# --- processes ------------------------------------------------------------------


class Process(harness_processes.Process):
    """A child process with its output in a log file, pinned to ``cpus`` if given (``taskset``);
    stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, argv: list[str], *, env: dict[str, str], log_path: Path, cpus: str = "") -> None:
        super().__init__(["taskset", "-c", cpus, *argv] if cpus else argv, env=env, log_path=log_path)

    def stop(self, timeout: float = 40) -> int:
        return super().stop(timeout)


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str, proc: Process | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.popen.poll() is not None:
            raise SystemExit(f"bench: {what}: the process exited; its log:\n{proc.output()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what}: not within {timeout:g} s")
        time.sleep(0.1)


def start_upstream(users: int, *, out: Path, cpus: str = "") -> tuple[Process, str]:
    """The demo upstream with ``users`` users; returns the process and its base URL."""
    proc = Process(
        [PYTHON, "manage.py", "demo_upstream", "--port", "0", "--users", str(users)],
        env=service_env(),
        log_path=out / "upstream.log",
        cpus=cpus,
    )

    def url() -> str | None:
        match = re.search(r"listening on (http://\S+)", proc.output())
        return match.group(1) if match else None

    return proc, wait_for(url, timeout=120, what="demo upstream start", proc=proc)


def upstream_post(base_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{base_url}{path}", json=body, timeout=300)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def start_gunicorn(
    *, out: Path, name: str, env: dict[str, str], workers: int = 2, cpus: str = ""
) -> tuple[Process, str]:
    """gunicorn with the service's gunicorn.conf.py and the bench settings; returns it and its base URL."""
    port = free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": str(workers)}
    proc = Process(
        [str(Path(PYTHON).parent / "gunicorn"), "-c", "gunicorn.conf.py"],
        env=env,
        log_path=out / f"{name}.log",
        cpus=cpus,
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, timeout=60, what=f"gunicorn {name} start", proc=proc)
    # Every worker answers before measuring (each imports the app lazily on its first request).
    for _ in range(workers * 8):
        httpx.get(f"{base}/healthz", timeout=5)
    return proc, base


def rss_mib(pid: int) -> float:
    """Current resident set of a process and its children (gunicorn master + workers), in MiB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids.extend(int(child) for child in children)
    except OSError:
        pass
    for each in pids:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


# --- load generators ------------------------------------------------------------


@dataclass
class WrkResult:
    requests_per_s: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, *, seconds: int, connections: int, token: str = "", threads: int = 1) -> WrkResult:
    """Closed-loop maximum throughput with wrk (C, one thread by default: it needs little CPU)."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if token:
        argv += ["-H", f"Authorization: Token {token}"]
    text = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
        return float(match.group(1)) * _WRK_UNITS[match.group(2)] if match else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if rps is None or total is None:
        raise SystemExit(f"bench: cannot read wrk's output:\n{text}")
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(group) for group in socket_errors.groups())
    return WrkResult(float(rps.group(1)), int(total.group(1)), errors, latency("50"), latency("99"))


@dataclass
class RateResult:
    """An open-loop-ish run at a fixed rate (hey): latencies of every answered request."""

    rate: float
    seconds: int
    latencies_ms: list[float]
    statuses: dict[int, int]
    expected: int

    @property
    def answered(self) -> int:
        return len(self.latencies_ms)

    @property
    def errors(self) -> int:
        """Non-200 answers plus requests that were due but never answered (connection errors, timeouts)."""
        bad_status = sum(count for status, count in self.statuses.items() if status != 200)
        # hey stops at -z without waiting: a request or two per worker in flight is not an error.
        missing = max(0, self.expected - self.answered - 2 * RATE_WORKERS)
        return bad_status + missing

    def p(self, pct: float) -> float:
        return percentile(self.latencies_ms, pct)


RATE_WORKERS = 20


def run_at_rate(url: str, *, rate: float, seconds: int, token: str = "") -> RateResult:
    """``rate`` requests per second for ``seconds``, evenly spaced, from RATE_WORKERS hey (Go) senders.

    Each sender is its own ``hey -c 1`` process that sends on its own ticker
    (rate / RATE_WORKERS per second) and waits for the answer; they start
    1 / rate apart, so the requests arrive one every 1 / rate seconds. (One
    ``hey -c 20`` starts its 20 tickers together: bursts of 20 requests at
    once, whose p99 is the time to drain a burst.) A sender only falls
    behind when one answer takes longer than its interval (RATE_WORKERS / rate
    seconds, 250 ms at 80/s); the run reports how many of the due requests
    were answered.
    """
    argv = [
        "hey",
        "-z",
        f"{seconds}s",
        "-c",
        "1",
        "-q",
        f"{rate / RATE_WORKERS:.3f}",
        "-o",
        "csv",
        "-t",
        "10",
    ]
    if token:
        argv += ["-H", f"Authorization: Token {token}"]
    senders: list[subprocess.Popen[str]] = []
    started = time.monotonic()
    try:
        for number in range(RATE_WORKERS):
            time.sleep(max(0.0, started + number / rate - time.monotonic()))
            senders.append(subprocess.Popen([*argv, url], stdout=subprocess.PIPE, text=True))
        outputs = [sender.communicate()[0] for sender in senders]
    finally:
        for sender in senders:
            if sender.poll() is None:
                sender.kill()
                sender.wait()
    if any(sender.returncode for sender in senders):
        raise SystemExit(f"bench: hey failed: {[sender.returncode for sender in senders]}")
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    for text in outputs:
        for row in csv.DictReader(io.StringIO(text)):
            latencies.append(float(row["response-time"]) * 1000)
            status = int(row["status-code"])
            statuses[status] = statuses.get(status, 0) + 1
    return RateResult(rate, seconds, latencies, statuses, expected=int(rate * seconds))

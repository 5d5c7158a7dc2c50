"""``scripts/cluster_check.py``: its analysis on made-up runs, and one real run of the script."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest

from harness.cluster import MARGIN, STALE_AFTER, TTL
from tests.cluster.support import MAIN_REDIS_URL, database_url
from tests.support import PROJECT_DIR

SCRIPT = PROJECT_DIR / "scripts" / "cluster_check.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cluster_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cluster_check"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _line(output: str, pattern: str) -> str:
    found = re.search(pattern, output, re.M)
    assert found, f"no line matching {pattern!r} in:\n{output}"
    return found.group(1)


def test_analysis_finds_duplicates_and_gaps() -> None:
    check = _load_script()
    t0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    ticks = [t0 + timedelta(seconds=n) for n in range(6)]
    rows = [(t, "succeeded") for t in ticks if t != ticks[3]]
    start, end = t0 - timedelta(milliseconds=300), ticks[-1]

    clean = check.analyse(rows, [t.isoformat() for t, _ in rows], start=start, end=end)
    assert (clean.expected, clean.executed, clean.gaps) == (6, 5, [ticks[3]])
    assert not clean.ok

    rows.append((ticks[3], "missed"))
    logged = [t.isoformat() for t, s in rows if s == "succeeded"]
    assert check.analyse(rows, logged, start=start, end=end).ok
    twice = check.analyse(rows, [*logged, ticks[1].isoformat()], start=start, end=end)
    assert twice.duplicate_executions == [ticks[1].isoformat()] and not twice.ok
    two_rows = check.analyse([*rows, (ticks[2], "skipped")], logged, start=start, end=end)
    assert two_rows.duplicate_rows == [ticks[2]] and not two_rows.ok
    unrecorded = check.analyse(rows, [*logged, ticks[3].isoformat()], start=start, end=end)
    assert unrecorded.executions_without_row == [ticks[3].isoformat()] and not unrecorded.ok


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_cluster_check_with_a_killed_leader() -> None:
    skipped = ("PYTEST_", "JOB_", "RUN_MAIN", "PROMETHEUS_", "LOG_", "GUNICORN_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skipped)}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="1",
        DATABASE_URL=database_url(),
        REDIS_URL=MAIN_REDIS_URL,
        JOB_LEASE_TTL=f"{TTL:g}",
        JOB_RUN_STALE_AFTER=f"{STALE_AFTER:g}",
        JOB_SHUTDOWN_GRACE="2",
    )
    argv = [
        sys.executable,
        str(SCRIPT),
        "--workers",
        "1",
        "--instances",
        "2",
        "--seconds",
        "10",
        "--kill-leader",
    ]
    script = subprocess.Popen(
        argv, cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        out, _ = script.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        script.send_signal(signal.SIGTERM)  # the script stops its instances on SIGTERM
        out, _ = script.communicate(timeout=90)
        raise AssertionError(f"cluster_check did not finish:\n{out}") from None
    assert script.returncode == 0, out
    expected = int(_line(out, r"^ticks expected: (\d+)$"))
    executed = int(_line(out, r"^ticks executed: (\d+)"))
    failover = float(_line(out, r"^failover: new leader after ([\d.]+) s"))
    assert re.search(r"^duplicates: 0 ", out, re.M) and re.search(r"^gaps: 0 ", out, re.M), out
    assert expected >= 10 - 4  # the window: from a second after start to 2 s before the end
    # Ticks of the failover are missed (their rows say so); every other tick executed.
    assert executed >= expected - (TTL + MARGIN), out
    assert failover <= TTL + MARGIN, out
    assert "result: OK" in out

"""/metrics under real gunicorn: every worker's requests are in the sum, whichever worker answers."""

from __future__ import annotations

import os
import signal
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.observability.support import (
    METRICS_TOKEN,
    Gunicorn,
    child_env,
    gunicorn,
    metric_value,
    this_run_database_url,
    wait_until,
)

AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def healthz_burst(server: Gunicorn, count: int) -> None:
    """``count`` requests, 16 at a time, each on its own connection, so both workers take some."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda _: server.get("/healthz").status, range(count)))
    assert statuses == [200] * count


def healthz_pids(server: Gunicorn) -> set[int]:
    """The processes that logged answering /healthz (JSON lines, stayy.http at DEBUG)."""
    return {
        line["pid"]
        for line in server.json_lines()
        if line["logger"] == "stayy.http" and line.get("http", {}).get("view") == "healthz"
    }


def scraped_healthz_count(server: Gunicorn) -> float:
    response = server.get("/metrics", headers=AUTH)
    assert response.status == 200, response.body
    return metric_value(
        response.body.decode(), "stayy_http_requests_total", view="healthz", method="GET", status="200"
    )


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_request_counter_sums_every_worker(tmp_path: Path) -> None:
    env = child_env(
        DATABASE_URL=this_run_database_url(),
        GUNICORN_WORKERS="2",
        GUNICORN_THREADS="4",
        LOG_FORMAT="json",
        LOG_LEVEL="DEBUG",  # successful probes are logged at DEBUG; their pids show who answered
    )
    made = 0
    with gunicorn(env=env, log_path=tmp_path / "gunicorn.log") as server:
        made += 1  # wait_ready's /healthz
        metrics_dir = Path(tempfile.gettempdir()) / f"stayy-prometheus-{server.pid}"
        assert metrics_dir.is_dir(), "gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR when unset"
        for _ in range(20):
            healthz_burst(server, 40)
            made += 40
            if len(healthz_pids(server)) >= 2:
                break
        workers = healthz_pids(server)
        assert len(workers) == 2, f"one worker answered everything: {workers}"
        # Scrape through several connections: each answer, from either worker, has the full sum.
        for _ in range(6):
            assert scraped_healthz_count(server) == made

        # A killed worker's counts stay in the sum; gunicorn replaces it.
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: len(_children(server.pid) - {victim}) == 2,
            timeout=30,
            message="gunicorn did not replace the killed worker",
        )
        server.wait_ready()
        made += 1
        healthz_burst(server, 10)
        made += 10
        assert scraped_healthz_count(server) == made
    assert not metrics_dir.exists(), "the directory gunicorn.conf.py made is removed on exit"


def _children(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}

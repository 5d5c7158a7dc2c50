"""Helpers of the observability tests: a real gunicorn in a child process, and reading /metrics."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from harness import processes as harness_processes
from harness.env import child_env as harness_child_env
from harness.processes import HttpAnswer
from tests.support import (  # re-exported for the tests of this folder
    BIN_DIR as BIN_DIR,
    PROJECT_DIR as PROJECT_DIR,
    Timeout as Timeout,
    child_database_url as child_database_url,
    free_port as free_port,
    json_log_lines,
    wait_until as wait_until,
)

this_run_database_url = child_database_url


METRICS_TOKEN = "test-metrics-token"


def child_env(**overrides: str | None) -> dict[str, str]:
    """This run's environment for a child server; ``None`` removes a variable."""
    defaults: dict[str, str | None] = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "1",
        "JOB_ENABLE": "0",
        "GUNICORN_ACCESS_LOG": "",
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    return harness_child_env(
        defaults, drop=("JOB_", "PROMETHEUS_", "prometheus_", "LOG_", "METRICS_"), **overrides
    )


class Gunicorn(harness_processes.Gunicorn):
    """``gunicorn -c gunicorn.conf.py`` on a free port; its output goes to a file."""

    def json_lines(self) -> list[dict[str, Any]]:
        """The output lines written in the JSON log format (gunicorn's own lines are not)."""
        return json_log_lines(self.output())

    def get(self, path: str, *, headers: dict[str, str] | None = None, timeout: float = 10) -> HttpAnswer:
        return self.request("GET", path, headers=headers, timeout=timeout)


@contextmanager
def gunicorn(*, env: dict[str, str], log_path: Path) -> Iterator[Gunicorn]:
    """A serving gunicorn for the block; stopped (and its output shown on failure) afterwards."""
    server = Gunicorn(env=env, log_path=log_path)
    try:
        server.wait_ready(timeout=30)
        yield server
    except BaseException:
        sys.stderr.write(f"--- gunicorn output ---\n{server.output()}\n")
        raise
    finally:
        server.stop()


def metric_value(text: str, sample_name: str, **labels: str) -> float:
    """The sum of the samples called ``sample_name`` whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total

"""Helpers of the observability tests: a real gunicorn in a child process, and reading /metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

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
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "JOB_", "RUN_MAIN", "PROMETHEUS_", "prometheus_", "LOG_", "METRICS_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="1",
        PYTHONUNBUFFERED="1",
        JOB_ENABLE="0",
        GUNICORN_ACCESS_LOG="",
        METRICS_TOKEN=METRICS_TOKEN,
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_get(url: str, *, headers: dict[str, str] | None = None, timeout: float = 10) -> Response:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Response(answer.status, answer.read())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.read())


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py`` on a free port; its output goes to a file."""

    def __init__(self, *, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = {**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}"}
        self.popen = subprocess.Popen(
            [str(BIN_DIR / "gunicorn"), "-c", "gunicorn.conf.py"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        """The output lines written in the JSON log format (gunicorn's own lines are not)."""
        return json_log_lines(self.output())

    def get(self, path: str, **kwargs: Any) -> Response:
        return http_get(self.base_url + path, **kwargs)

    def wait_ready(self, timeout: float = 30) -> None:
        def up() -> bool:
            if self.popen.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.popen.returncode}:\n{self.output()}")
            try:
                return self.get("/healthz", timeout=2).status == 200
            except OSError:
                return False

        wait_until(up, timeout=timeout, interval=0.1, message=f"gunicorn not serving:\n{self.output()}")

    def stop(self, timeout: float = 30) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._log.close()
        return self.popen.returncode


@contextmanager
def gunicorn(*, env: dict[str, str], log_path: Path) -> Iterator[Gunicorn]:
    """A serving gunicorn for the block; stopped (and its output shown on failure) afterwards."""
    server = Gunicorn(env=env, log_path=log_path)
    try:
        server.wait_ready()
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

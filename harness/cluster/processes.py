"""The service processes of a cluster: gunicorn instances and ``runjobs`` processes, and their logs.

Every child runs with :data:`harness.cluster.SETTINGS_MODULE` (the service plus
the ``testing.slow`` job) against the database a :class:`Cluster` is given, in a
session of its own, so a kill reaches it together with its workers through its
process group. Each writes JSON log lines; the slow job also appends each of
its executions to the cluster's execution log (``STAYY_TEST_EXEC_LOG``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import processes as harness_processes
from harness.cluster import PURGE, SETTINGS_MODULE, SLOW, STALE_AFTER, TTL
from harness.env import child_env
from harness.processes import HttpAnswer, Process


class ServiceLog:
    """The JSON log lines of a service process (``LOG_FORMAT=json``)."""

    def records(self: Any) -> list[dict[str, Any]]:
        """The JSON log lines; gunicorn's own lines are skipped."""
        out = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by SIGKILL
                    continue
        return out


class ServiceProcess(ServiceLog, Process):
    """A child process in a session of its own, its output (stdout and stderr) added to a file."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log_path: Path) -> None:
        super().__init__(argv, env=env, log_path=log_path, name=name, new_session=True, append=True)

    def job_server_pids(self) -> set[int]:
        return {self.pid}


class Gunicorn(ServiceLog, harness_processes.Gunicorn):
    """``gunicorn -c gunicorn.conf.py`` on a free port of ``host``, in a session of its own."""

    def __init__(
        self,
        name: str,
        *,
        env: dict[str, str],
        log_path: Path,
        host: str = "127.0.0.1",
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        super().__init__(env=env, log_path=log_path, name=name, host=host, wrap=wrap, append=True)

    def job_server_pids(self) -> set[int]:
        return self.workers()

    def request(  # type: ignore[override]
        self, method: str, path: str, *, token: str | None = None, timeout: float = 10, json_body: Any = None
    ) -> HttpAnswer:
        headers = {"Authorization": f"Token {token}"} if token else {}
        return super().request(method, path, headers=headers, timeout=timeout, json_body=json_body)


@dataclass
class Cluster:
    """The processes of one test or fault run, all of one ``JOB_NAME``; :meth:`kill_all` stops them."""

    tmp_path: Path
    job_name: str
    exec_log: Path
    #: Where the children store their data (``DATABASE_URL``).
    database_url: str
    processes: list[ServiceProcess | Gunicorn] = field(default_factory=list)

    def env(self, *, redis_url: str, overrides: dict[str, Any] | None = None, **extra: str) -> dict[str, str]:
        """A child's environment: the cluster's database, lease name and short TTLs; ``extra`` wins."""
        job_overrides: dict[str, Any] = {PURGE: {"interval": 1}, SLOW: {"enabled": False}}
        job_overrides.update(overrides or {})
        values: dict[str, str | None] = {
            "THIRD_PARTY_USERS_URL": None,  # the users sync job skips instead of calling out
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "DJANGO_DEBUG": "1",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": redis_url,
            "JOB_ENABLE": "1",
            "JOB_NAME": self.job_name,
            "JOB_OVERRIDES": json.dumps(job_overrides),
            "JOB_LEASE_TTL": f"{TTL:g}",
            "JOB_RUN_STALE_AFTER": f"{STALE_AFTER:g}",
            "JOB_SHUTDOWN_GRACE": "10",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "GUNICORN_ACCESS_LOG": "",
            "STAYY_TEST_EXEC_LOG": str(self.exec_log),
        }
        values.update(extra)
        return child_env(values, drop=("JOB_", "PROMETHEUS_", "LOG_", "METRICS_", "GUNICORN_", "STAYY_"))

    def gunicorn(
        self,
        name: str,
        *,
        env: dict[str, str],
        workers: int,
        host: str = "127.0.0.1",
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> Gunicorn:
        metrics_dir = self.tmp_path / f"metrics-{name}"
        metrics_dir.mkdir(exist_ok=True)
        env = {**env, "GUNICORN_WORKERS": str(workers), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        process = Gunicorn(name, env=env, log_path=self.tmp_path / f"{name}.log", host=host, wrap=wrap)
        self.processes.append(process)
        return process

    def runjobs(self, name: str, *, env: dict[str, str]) -> ServiceProcess:
        argv = [sys.executable, "manage.py", "runjobs"]
        process = ServiceProcess(name, argv, env=env, log_path=self.tmp_path / f"{name}.log")
        self.processes.append(process)
        return process

    def kill_all(self) -> None:
        for process in self.processes:
            process.kill()

    def records(self) -> list[dict[str, Any]]:
        return [record for process in self.processes for record in process.records()]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ({p.pid}) ---\n{p.output()[-20000:]}" for p in self.processes)

    def owner(self, pid: int) -> ServiceProcess | Gunicorn | None:
        """The started process that is, or whose worker is, ``pid``."""
        for process in self.processes:
            if pid == process.pid or pid in process.job_server_pids():
                return process
        return None

    def exec_entries(self) -> list[dict[str, Any]]:
        if not self.exec_log.exists():
            return []
        return [json.loads(line) for line in self.exec_log.read_text().splitlines() if line]

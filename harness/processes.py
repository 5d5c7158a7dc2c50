"""Child processes with their output in a log file, and gunicorn on a free port.

A :class:`Process` started with ``new_session`` leads a session of its own, so a kill reaches
everything it started (gunicorn's workers) through its process group. Stopping is SIGTERM first,
then SIGKILL if the process is still there after the timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.ports import free_port
from harness.waiting import wait_until

PROJECT_DIR = Path(__file__).resolve().parents[1]
#: The folder of this interpreter's scripts (gunicorn, ...), in the virtualenv if there is one.
BIN_DIR = Path(sys.executable).parent


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def children(pid: int) -> set[int]:
    """The child processes of ``pid`` (Linux ``/proc``)."""
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except FileNotFoundError:
        return set()


class StillRunning(subprocess.TimeoutExpired):
    """The process did not exit in time; the message ends with the tail of its output."""

    def __init__(self, process: Process, timeout: float) -> None:
        super().__init__(process.argv, timeout)
        self.process = process

    def __str__(self) -> str:
        return f"{super().__str__()}\n--- its output ---\n{self.process.output()[-20000:]}"


class Process:
    """A child process (in the project folder) whose stdout and stderr go to ``log_path``.

    ``append`` keeps what the log file held (a process restarted under the same name).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        name: str = "",
        new_session: bool = False,
        append: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.name = name or Path(self.argv[0]).name
        self.log_path = log_path
        self.new_session = new_session
        self._log = open(log_path, "ab" if append else "wb")  # noqa: SIM115 - closed in kill()
        self.popen = subprocess.Popen(
            self.argv,
            cwd=PROJECT_DIR,
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def running(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """The exit status; :class:`StillRunning` (with the output) if it runs past ``timeout``."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StillRunning(self, timeout) from None

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` s; returns its exit status."""
        if self.running():
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        self.kill()
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL (to its whole session, if it has one) unless it has exited; reap it, close the log."""
        if self.new_session:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        elif self.running():
            self.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        if not self._log.closed:
            self._log.close()


@dataclass
class HttpAnswer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    timeout: float = 10,
    json_body: Any = None,
) -> HttpAnswer:
    """One request with the standard library; an HTTP error status is an answer, not an exception."""
    headers = dict(headers or {})
    data = None
    if json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, method=method, headers=headers, data=data)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return HttpAnswer(answer.status, answer.read())
    except urllib.error.HTTPError as exc:
        return HttpAnswer(exc.code, exc.read())


class Gunicorn(Process):
    """``gunicorn -c gunicorn.conf.py`` on a free port of ``host``, in a session of its own.

    ``wrap`` may prefix its command with one that execs it (``ip netns exec``: the pid stays
    gunicorn's).
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        log_path: Path,
        name: str = "gunicorn",
        host: str = "127.0.0.1",
        wrap: Callable[[list[str]], list[str]] | None = None,
        append: bool = False,
    ) -> None:
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        argv = [str(BIN_DIR / "gunicorn"), "-c", "gunicorn.conf.py"]
        super().__init__(
            wrap(argv) if wrap else argv,
            env={**env, "GUNICORN_BIND": f"{host}:{self.port}"},
            log_path=log_path,
            name=name,
            new_session=True,
            append=append,
        )

    def workers(self) -> set[int]:
        return {pid for pid in children(self.pid) if pid_alive(pid)}

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10,
        json_body: Any = None,
    ) -> HttpAnswer:
        return http_request(
            self.url + path, method=method, headers=headers, timeout=timeout, json_body=json_body
        )

    def healthy(self) -> bool:
        try:
            return self.request("GET", "/healthz", timeout=2).status == 200
        except OSError:
            return False

    def wait_ready(self, *, workers: int = 0, timeout: float = 60) -> None:
        """Until ``/healthz`` answers and at least ``workers`` workers run; fails if gunicorn exits."""

        def up() -> bool:
            if not self.running():
                raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.output()}")
            return len(self.workers()) >= workers and self.healthy()

        wait_until(up, timeout=timeout, interval=0.1, message=f"{self.name} not serving:\n{self.output()}")

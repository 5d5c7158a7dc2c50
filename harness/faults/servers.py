"""Private PostgreSQL and Redis servers that fault tests and scripts may stop, restart or hang.

The machine's shared PostgreSQL (5432) and Redis (6379) serve every other
test run at the same time, so faults are never injected there. A
:class:`PostgresServer` is a throwaway cluster (``initdb``) on a free port in a
temporary directory, a :class:`RedisServer` a ``redis-server`` without
persistence on a free port; both can be stopped and started again on the same
port. PostgreSQL refuses to run as root: as root its programs run as the
``postgres`` user (``runuser``).

Nothing here imports Django.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from harness.ports import free_port

PROJECT_DIR = Path(__file__).resolve().parents[2]


def _wait(condition, *, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{what} within {timeout:g} s")
        time.sleep(0.05)


def _postgres_bin(program: str) -> str:
    """Path of a PostgreSQL server program (``initdb``, ``pg_ctl``): on PATH, else the newest
    Debian/Ubuntu install under ``/usr/lib/postgresql``."""
    found = shutil.which(program)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))
    if not candidates:
        raise RuntimeError(f"PostgreSQL's {program} is neither on PATH nor under /usr/lib/postgresql")
    return candidates[-1]


class PostgresServer:
    """A PostgreSQL cluster of its own: ``initdb`` in a temporary directory, trust auth for ``root``.

    The superuser is called ``root`` like the machine's shared server, so URLs differ only in
    the port. ``fsync`` is off: the cluster is thrown away, and restarts get faster.
    """

    USER = "root"

    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        #: ``listen_addresses``; :meth:`reachable_at` adds one for a while.
        self.listen: tuple[str, ...] = ("127.0.0.1",)
        self.root = Path(tempfile.mkdtemp(prefix="stayy-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "running as root, but there is no 'postgres' user to run PostgreSQL as"
                ) from None
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]

    def _run(self, argv: list[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self._as_postgres, *argv], capture_output=True, text=True, timeout=timeout, cwd=self.root
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stdout}{done.stderr}{self.log_tail()}")
        return done

    def init(self) -> None:
        argv = [_postgres_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", self.USER]
        self._run([*argv, "-E", "UTF8", "--no-sync", "--no-instructions"])

    def _pg_ctl(self, *args: str, timeout: float = 60) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses={','.join(self.listen)} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            [_postgres_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-o", options, *args],
            timeout=timeout,
        )

    def start(self) -> None:
        self._pg_ctl("-w", "-t", "60", "start", timeout=90)
        _wait(self.accepts, timeout=30, what="PostgreSQL did not accept connections")

    def stop(self) -> None:
        """Fast shutdown: open transactions are rolled back, clients are disconnected."""
        self._pg_ctl("-w", "-t", "60", "-m", "fast", "stop", timeout=90)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    @contextlib.contextmanager
    def reachable_at(self, address: str, *, clients: str) -> Iterator[None]:
        """Also listen on ``address`` and trust connections from ``clients`` (a CIDR) there, for the
        block; both changes restart the server, on entry and on exit."""
        hba = self.data / "pg_hba.conf"
        original = hba.read_text()
        hba.write_text(f"{original}host all all {clients} trust\n")
        self.stop()
        self.listen = ("127.0.0.1", address)
        try:
            self.start()
            yield
        finally:
            hba.write_text(original)
            self.listen = ("127.0.0.1",)
            if self.running():
                self.stop()
            self.start()

    def accepts(self) -> bool:
        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def url(self, database: str, *, host: str = "127.0.0.1") -> str:
        return f"postgres://{self.USER}@{host}:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)  # type: ignore[arg-type]  # our own fixed statements

    def create_database(self, name: str, *, template: str | None = None) -> None:
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return "\n--- postgres.log ---\n" + self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def destroy(self) -> None:
        """Stop the server (immediate) and delete its directory."""
        if self.running():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._pg_ctl("-w", "-m", "immediate", "stop", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A throwaway ``redis-server`` on a free port; it can be killed, hung (SIGSTOP) and restarted.

    It listens on 127.0.0.1 and on any other ``addresses`` (see :meth:`url_at`); with those,
    protected mode is off, as clients come from other addresses.
    """

    def __init__(self, log_path: Path, *, addresses: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = self.url_at("127.0.0.1")
        self.addresses = ("127.0.0.1", *addresses)
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None

    def url_at(self, address: str) -> str:
        return f"redis://{address}:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", " ".join(self.addresses)]
        if len(self.addresses) > 1:
            argv += ["--protected-mode", "no"]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait(self.ping, timeout=10, what=f"redis-server did not answer (log: {self.log_path})")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _signal(self, signum: int) -> None:
        assert self.popen is not None, "redis-server is not running"
        self.popen.send_signal(signum)

    def pause(self) -> None:
        """Hang: the port still accepts connections, nothing answers."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGCONT)
                self.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=10)
            self.popen = None

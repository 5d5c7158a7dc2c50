"""The job run a log record belongs to, carried in a context variable, and the lines each run wrote.

The runner wraps each handler in :func:`bind_run`; :class:`RunContextFilter`,
installed on the log handler in ``LOGGING``, copies the bound job name and run
id onto every record, so a line written by any logger during the run (a
service, the repository, a library) says which run wrote it. Context
variables are per thread, and a job thread executes one run at a time (the
binding is reset when the run ends, before the thread takes the next one), so
runs that execute at the same time do not see each other's context.

Given a :class:`RunLog`, :func:`bind_run` also captures those lines for the
run (stored with it and shown on its detail page): a handler on the root
logger appends each record to the log bound in the writing thread, or to the
log of the run a record names itself (the job context's logger does, from the
watchdog thread too). Lines of other threads and other runs never land there.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime


class RunLog:
    """The lines one run logged, kept up to ``max_bytes`` (UTF-8); past that only counted.

    The start of the log is kept: the line that crosses the cap is cut, later
    lines are dropped, and :meth:`text` ends with a note saying how much was
    dropped. The note fits in the cap too.
    """

    #: Bytes kept free for the note that says how much was dropped.
    NOTE_RESERVE = 160

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._budget = max(0, max_bytes - self.NOTE_RESERVE)
        self._lock = threading.Lock()
        self._parts: list[str] = []
        self._kept_bytes = 0
        self._dropped_bytes = 0
        self._dropped_lines = 0

    def append(self, line: str) -> None:
        # PostgreSQL text cannot hold NUL characters.
        data = (line.replace("\x00", "\ufffd") + "\n").encode("utf-8", errors="replace")
        with self._lock:
            room = self._budget - self._kept_bytes
            if not self._dropped_bytes and len(data) <= room:
                self._parts.append(data.decode("utf-8"))
                self._kept_bytes += len(data)
                return
            kept = b""
            if not self._dropped_bytes and room > 1:
                # The start of the line that crosses the cap, cut on a character boundary.
                kept = data[: room - 1].decode("utf-8", errors="ignore").encode("utf-8") + b"\n"
                if len(kept) > 1:
                    self._parts.append(kept.decode("utf-8"))
                    self._kept_bytes += len(kept)
                else:
                    kept = b""
            self._dropped_bytes += len(data) - len(kept)
            self._dropped_lines += 1

    def text(self) -> str:
        with self._lock:
            body = "".join(self._parts)
            if not self._dropped_bytes:
                return body
            return body + (
                f"[log capped at {self.max_bytes} bytes (JOB_RUN_LOG_MAX_BYTES): "
                f"{self._dropped_bytes} more bytes dropped, in {self._dropped_lines} line(s)]\n"
            )


@dataclass(frozen=True)
class _BoundRun:
    job: str
    run_id: int | None
    log: RunLog | None


_current_run: contextvars.ContextVar[_BoundRun | None] = contextvars.ContextVar(
    "stayy_current_run", default=None
)
# Logs of the runs capturing now, for records that name their run from another thread.
_logs_by_run: dict[int, RunLog] = {}
_logs_lock = threading.Lock()


@contextmanager
def bind_run(job: str, run_id: int | None, *, log: RunLog | None = None) -> Iterator[None]:
    """Mark every log record written inside the block as belonging to this run; capture it in ``log``."""
    token = _current_run.set(_BoundRun(job, run_id, log))
    if log is not None:
        _RunLogHandler.install()
    named = run_id if log is not None else None
    if named is not None and log is not None:
        with _logs_lock:
            _logs_by_run[named] = log
    try:
        yield
    finally:
        if named is not None:
            with _logs_lock:
                if _logs_by_run.get(named) is log:
                    del _logs_by_run[named]
        _current_run.reset(token)


def current_run() -> tuple[str, int | None] | None:
    """The ``(job, run_id)`` bound in this thread, or ``None`` outside a run."""
    bound = _current_run.get()
    return None if bound is None else (bound.job, bound.run_id)


class RunContextFilter(logging.Filter):
    """Give every record ``job`` and ``run_id`` attributes (empty strings outside a run).

    Values a record already carries win: the job context's logger passes them
    as ``extra``, and they are the same run anyway.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _current_run.get()
        job, run_id = (bound.job, bound.run_id) if bound is not None else ("", "")
        if getattr(record, "job", None) in (None, ""):
            record.job = job
        if getattr(record, "run_id", None) in (None, ""):
            record.run_id = "" if run_id is None else run_id
        return True


class RunLogFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <logger>: <message>`` (plus the traceback); no run tag: the log is the run's."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class _RunLogHandler(logging.Handler):
    """On the root logger: appends each record to the log of the run it was written in, if any."""

    _instance: _RunLogHandler | None = None
    _install_lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(RunLogFormatter())

    @classmethod
    def install(cls) -> None:
        """Put the handler on the root logger (again, if a logging reconfiguration removed it)."""
        root = logging.getLogger()
        with cls._install_lock:
            if cls._instance is None:
                cls._instance = cls()
            if cls._instance not in root.handlers:
                root.addHandler(cls._instance)

    def emit(self, record: logging.LogRecord) -> None:
        log = self._log_of(record)
        if log is None:
            return
        try:
            log.append(self.format(record))
        except Exception:
            self.handleError(record)

    @staticmethod
    def _log_of(record: logging.LogRecord) -> RunLog | None:
        named = getattr(record, "run_id", None)
        bound = _current_run.get()
        if bound is not None and bound.log is not None and named in (None, "", bound.run_id):
            return bound.log
        if isinstance(named, int):
            with _logs_lock:
                return _logs_by_run.get(named)
        return None

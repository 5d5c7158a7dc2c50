"""The job run a log record belongs to, carried in a context variable.

The runner wraps each handler in :func:`bind_run`; :class:`RunContextFilter`,
installed on the log handler in ``LOGGING``, copies the bound job name and run
id onto every record, so a line written by any logger during the run (a
service, the repository, a library) says which run wrote it. Context
variables are per thread, and every run executes in its own thread, so runs
that execute at the same time do not see each other's context.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

_current_run: contextvars.ContextVar[tuple[str, int | None] | None] = contextvars.ContextVar(
    "stayy_current_run", default=None
)


@contextmanager
def bind_run(job: str, run_id: int | None) -> Iterator[None]:
    """Mark every log record written inside the block as belonging to this run."""
    token = _current_run.set((job, run_id))
    try:
        yield
    finally:
        _current_run.reset(token)


def current_run() -> tuple[str, int | None] | None:
    """The ``(job, run_id)`` bound in this thread, or ``None`` outside a run."""
    return _current_run.get()


class RunContextFilter(logging.Filter):
    """Give every record ``job`` and ``run_id`` attributes (empty strings outside a run).

    Values a record already carries win: the job context's logger passes them
    as ``extra``, and they are the same run anyway.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _current_run.get()
        job, run_id = bound if bound is not None else ("", "")
        if getattr(record, "job", None) in (None, ""):
            record.job = job
        if getattr(record, "run_id", None) in (None, ""):
            record.run_id = "" if run_id is None else run_id
        return True

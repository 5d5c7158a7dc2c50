"""The two log formats of the service, chosen with ``LOG_FORMAT`` (``plain`` or ``json``).

HTTP request lines and job lines go through the same handler and formatter.
Both formats show the run a line belongs to (see
:mod:`stayy.observability.logcontext`); the plain format leaves the
``[job=… run=…]`` tag out when there is none.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any


def _run_fields(record: logging.LogRecord) -> tuple[str, Any]:
    job = getattr(record, "job", "") or ""
    run_id = getattr(record, "run_id", "")
    return str(job), ("" if run_id is None else run_id)


class PlainFormatter(logging.Formatter):
    """``<time> <LEVEL> <pid> <logger> [job=<job> run=<id>]: <message>``, one line per record
    (plus the traceback, if any)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(process)d %(name)s%(run_tag)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        job, run_id = _run_fields(record)
        record.run_tag = f" [job={job} run={run_id}]" if job or run_id != "" else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``pid``, ``message``,
    ``job``, ``run_id``, ``exc_info`` (``null`` when empty), plus ``http`` on request lines."""

    def format(self, record: logging.LogRecord) -> str:
        job, run_id = _run_fields(record)
        exc_text = None
        if record.exc_info:
            exc_text = self.formatException(record.exc_info)
        elif record.exc_text:
            exc_text = record.exc_text
        if record.stack_info:
            exc_text = f"{exc_text}\n{record.stack_info}" if exc_text else self.formatStack(record.stack_info)
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
            "job": job or None,
            "run_id": None if run_id == "" else run_id,
            "exc_info": exc_text,
        }
        http = getattr(record, "http", None)
        if isinstance(http, dict):
            line["http"] = http
        return json.dumps(line, default=str, ensure_ascii=False)

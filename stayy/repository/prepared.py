"""The statements every tick runs, bound and prepared on the server (PostgreSQL only).

Django's psycopg cursor binds parameters on the client, so the server parses
and plans each statement anew, and Python quotes every value into its text.
The tick's claim (:mod:`stayy.repository.ticks`) and a run's end
(:func:`stayy.repository.runs.finish`) run ten at a time when ten jobs are due
at once, on two cores, so they go to psycopg directly: parameters bound on the
server, the statement prepared on the connection the first time
(``DB_PREPARED_STATEMENTS``; psycopg prepares nothing with it off).

A statement sent here is its own health check: Django's (a ``SELECT 1``
before a connection's first query of a task) is replaced by one retry on a
new connection when the server closed the old one (a restart).
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import OperationalError, connection


def fetch_row(sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """The first row of ``sql``."""
    row, _ = _run(sql, params, fetch=True)
    return row


def execute(sql: str, params: dict[str, Any]) -> int:
    """Run ``sql``; the number of rows it changed."""
    _, rowcount = _run(sql, params, fetch=False)
    return rowcount


def _run(sql: str, params: dict[str, Any], *, fetch: bool) -> tuple[tuple[Any, ...] | None, int]:
    for attempt in (1, 2):
        connection.ensure_connection()
        raw = connection.connection
        try:
            with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
                cursor.execute(sql, params, prepare=True)
                row = cursor.fetchone() if fetch else None
                rowcount = cursor.rowcount
        except OperationalError:
            if attempt == 2 or not (raw.closed or raw.broken):
                raise
            connection.close()
            continue
        connection.health_check_done = True  # type: ignore[attr-defined]  # (Django 4.1+, not in the stubs)
        return (tuple(row) if row is not None else None), rowcount
    raise AssertionError("unreachable")

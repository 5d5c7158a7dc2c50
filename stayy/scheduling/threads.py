"""Threads of the job runtime, which close their own database connections when they end.

Django opens one connection per thread and only closes it at the end of a
request; a thread the runtime starts for a tick would otherwise leave its
connection open until garbage collection, and PostgreSQL would see one more
session per tick.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def run_closing_connections(target: Callable[..., Any], *args: Any) -> None:
    try:
        target(*args)
    finally:
        connections.close_all()


def spawn(target: Callable[..., Any], *args: Any, name: str) -> threading.Thread:
    """Start a daemon thread running ``target(*args)`` that closes its connections at the end."""
    thread = threading.Thread(target=run_closing_connections, args=(target, *args), name=name, daemon=True)
    thread.start()
    return thread

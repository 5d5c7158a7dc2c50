"""Start the embedded job server only in a serving process, exactly once.

``ready()`` runs in every process that loads Django: management commands,
the autoreloader's parent, a gunicorn master with ``--preload``. The job
server must run only where requests are served:

* ``manage.py runserver``: in the autoreloader's child (``RUN_MAIN=true``) or
  with ``--noreload``; never in any other management command;
* gunicorn: in each worker, from ``gunicorn.conf.py``'s ``post_worker_init``
  hook (a thread started in a ``--preload`` master would not survive fork);
* any other server: call :func:`start` from the worker after it forks.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

from stayy.conf import stayy_settings

if TYPE_CHECKING:
    from stayy.scheduling.server import JobServer

logger = logging.getLogger("stayy.jobs")

_lock = threading.Lock()
_server: JobServer | None = None
_server_pid: int | None = None


def _command(argv: list[str]) -> tuple[str, list[str]] | None:
    """The management command and its arguments, if this process is ``manage.py``."""
    program = os.path.basename(argv[0]) if argv else ""
    if program in ("manage.py", "django-admin", "django-admin.py") and len(argv) > 1:
        return argv[1], argv[2:]
    if program == "__main__.py" and len(argv) > 1:  # python -m django
        return argv[1], argv[2:]
    return None


def should_start_from_ready(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> bool:
    """Whether ``AppConfig.ready()`` of this process should start the job server."""
    argv = sys.argv if argv is None else argv
    environ = dict(os.environ) if environ is None else environ
    if not stayy_settings.job_enable:
        return False
    command = _command(argv)
    if command is None:
        # gunicorn starts it from its worker hook; anything else calls start().
        return False
    name, args = command
    if name != "runserver":
        return False
    return environ.get("RUN_MAIN") == "true" or "--noreload" in args


def start_from_ready() -> None:
    if should_start_from_ready():
        start()


def start() -> JobServer | None:
    """Start this process's job server in background threads (idempotent, fork-aware)."""
    global _server, _server_pid
    if not stayy_settings.job_enable:
        return None
    with _lock:
        if _server is not None and _server_pid == os.getpid():
            return _server
        from stayy.scheduling.server import JobServer

        _server = JobServer(name=stayy_settings.job_name)
        _server_pid = os.getpid()
        _server.start()
        atexit.register(stop)
        _exit_on_sigterm()
        return _server


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into a normal exit where nobody handles it (``runserver --noreload``).

    The default action kills the process without running ``atexit``, so the
    lease would not be released nor running jobs recorded. Servers that handle
    SIGTERM themselves (gunicorn, the autoreloader) keep their handler.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def stop() -> None:
    """Stop this process's job server, waiting for running jobs up to the grace period."""
    global _server
    with _lock:
        server = _server if _server_pid == os.getpid() else None
        _server = None
    if server is not None:
        server.stop(grace=stayy_settings.shutdown_grace)


def current() -> JobServer | None:
    return _server if _server_pid == os.getpid() else None

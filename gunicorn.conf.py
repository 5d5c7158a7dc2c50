"""gunicorn settings for Stayy: workers from the environment, job server per worker.

Run: ``gunicorn -c gunicorn.conf.py`` (``config.wsgi`` is the default app).
Each worker starts its own job server after it forks (``post_worker_init``),
so ``--preload`` is safe: nothing thread- or socket-like is created in the
master. On a graceful stop (SIGTERM) each worker stops its job server in
``worker_exit``: running jobs get ``JOB_SHUTDOWN_GRACE`` seconds, and the
graceful timeout is longer than that.
"""

from __future__ import annotations

import os
import sys

from config.env import ConfigError, env_float, env_int, env_str

try:
    bind = env_str("GUNICORN_BIND", "127.0.0.1:8000")
    workers = env_int("WEB_CONCURRENCY", 2, minimum=1)
    threads = env_int("GUNICORN_THREADS", 4, minimum=1)
    _job_grace = env_float("JOB_SHUTDOWN_GRACE", 20.0, minimum=0.0)
    timeout = env_int("GUNICORN_TIMEOUT", 30, minimum=1)
except ConfigError as _exc:
    sys.stderr.write(f"stayy: {_exc}\n")
    sys.exit(2)

wsgi_app = "config.wsgi:application"
worker_class = "gthread"
graceful_timeout = int(_job_grace) + 10
accesslog = env_str("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
# gunicorn's control socket lives at one path per user; several instances on a
# host (or in tests) would fight over it, and Stayy does not use it.
control_socket_disable = True
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def on_starting(server):  # type: ignore[no-untyped-def]
    """Validate every setting in the master, so a bad one stops startup with one line."""
    import django

    try:
        django.setup()
    except ConfigError as exc:
        sys.stderr.write(f"stayy: {exc}\n")
        sys.exit(2)


def pre_fork(server, worker):  # type: ignore[no-untyped-def]
    # A connection opened in the master would be shared by every child.
    from django.db import connections

    connections.close_all()


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    from stayy.runtime import embedded

    embedded.start()


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    from stayy.runtime import embedded

    embedded.stop()

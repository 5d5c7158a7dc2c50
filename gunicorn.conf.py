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
import tempfile

from config.env import ConfigError, env_float, env_int, env_str

try:
    bind = env_str("GUNICORN_BIND", "127.0.0.1:8000")
    # Not WEB_CONCURRENCY: gunicorn parses that itself, with a traceback on a bad value.
    workers = env_int("GUNICORN_WORKERS", 2, minimum=1)
    threads = env_int("GUNICORN_THREADS", 4, minimum=1)
    _job_grace = env_float("JOB_SHUTDOWN_GRACE", 20.0, minimum=0.0)
    timeout = env_int("GUNICORN_TIMEOUT", 30, minimum=1)
except ConfigError as _exc:
    sys.stderr.write(f"stayy: {_exc}\n")
    sys.exit(2)

wsgi_app = "config.wsgi:application"
worker_class = "gthread"
graceful_timeout = int(_job_grace) + 10
# Off by default: the stayy.http logger already logs every request, in the service format.
accesslog = env_str("GUNICORN_ACCESS_LOG", "") or None
errorlog = "-"
# gunicorn's control socket lives at one path per user; several instances on a
# host (or in tests) would fight over it, and Stayy does not use it.
control_socket_disable = True
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# prometheus-client picks multiprocess mode when it is first imported, so the
# directory is set here, before the app loads: every worker writes its metrics
# there and /metrics merges them. One directory per gunicorn master.
_own_metrics_dir = os.path.join(tempfile.gettempdir(), f"stayy-prometheus-{os.getpid()}")
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _own_metrics_dir


def on_starting(server):  # type: ignore[no-untyped-def]
    """Validate every setting in the master, so a bad one stops startup with one line."""
    import django

    try:
        django.setup()
    except ConfigError as exc:
        sys.stderr.write(f"stayy: {exc}\n")
        sys.exit(2)
    # Files left by an earlier run would add old counts to the new ones.
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(metrics_dir, exist_ok=True)
    for entry in os.scandir(metrics_dir):
        if entry.is_file() and entry.name.endswith(".db"):
            os.unlink(entry.path)


def pre_fork(server, worker):  # type: ignore[no-untyped-def]
    # A connection opened in the master would be shared by every child.
    from django.db import connections

    connections.close_all()


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    from stayy.runtime import embedded, heap

    embedded.start()
    # Last: what the app and its job server keep for good is loaded by now.
    heap.freeze_startup_objects()


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    from stayy.runtime import embedded

    embedded.stop()


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    # Drops the exited worker's live gauges (the leader gauge); its counters stay in the sums.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):  # type: ignore[no-untyped-def]
    # Only the directory made up above; one given in the environment is the operator's.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") == _own_metrics_dir:
        import shutil

        shutil.rmtree(_own_metrics_dir, ignore_errors=True)

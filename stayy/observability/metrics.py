"""Prometheus metrics of the service, and the functions that record them.

Under gunicorn every worker is its own process, so the metrics use
prometheus-client's multiprocess mode whenever ``PROMETHEUS_MULTIPROC_DIR`` is
set (``gunicorn.conf.py`` sets it before anything imports prometheus-client):
each process writes its values to files in that directory and ``/metrics``
merges them, whichever worker answers the scrape. Without it (tests,
``runserver``) the values live in this process's default registry.

Metric names and how they merge across processes:

* ``stayy_http_requests_total{view,method,status}`` and
  ``stayy_http_request_duration_seconds{view,method,status}`` — summed;
* ``stayy_job_runs_total{job,status}`` — every recorded run and unrun tick;
* ``stayy_job_duration_seconds{job}`` and ``stayy_job_lateness_seconds{job}``;
* ``stayy_job_server_leader{name}`` — 1 in the process that leads; summed over
  live processes only (``livesum``), so a killed leader's 1 disappears;
* ``stayy_job_last_success_timestamp_seconds{job}`` — the newest over all
  processes (``max``), kept after the process that recorded it exits.

The job runtime calls :func:`observe_run`, :func:`observe_ticks_not_run` and
:func:`set_leader`; the HTTP middleware calls :func:`observe_request`.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import ParamSpec, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

logger = logging.getLogger(__name__)
P = ParamSpec("P")

#: Request methods get their own label value; anything else is counted as ``other``.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The view label of a request that matched no URL pattern (404s, redirects before routing).
UNMATCHED_VIEW = "<unmatched>"

HTTP_REQUESTS = Counter(
    "stayy_http_requests",
    "HTTP requests answered, by view name, method and status code.",
    ["view", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "stayy_http_request_duration_seconds",
    "Time from the request entering the middleware stack to the response leaving it.",
    ["view", "method", "status"],
)
JOB_RUNS = Counter(
    "stayy_job_runs",
    "Job runs recorded, by job and final status (missed and skipped ticks included).",
    ["job", "status"],
)
JOB_DURATION = Histogram(
    "stayy_job_duration_seconds",
    "Time a job handler executed, from start to its return.",
    ["job"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
JOB_LATENESS = Histogram(
    "stayy_job_lateness_seconds",
    "Delay between a scheduled tick's due time and the start of its run.",
    ["job"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
JOB_SERVER_LEADER = Gauge(
    "stayy_job_server_leader",
    "1 in the process whose job server holds the lease of this JOB_NAME, else 0.",
    ["name"],
    multiprocess_mode="livesum",
)
JOB_LAST_SUCCESS = Gauge(
    "stayy_job_last_success_timestamp_seconds",
    "Unix time at which the job's latest successful run finished.",
    ["job"],
    multiprocess_mode="max",
)


_failed_before = False


def _never_raises(record: Callable[P, None]) -> Callable[P, None]:
    """Metrics must not break what they measure: a failure (e.g. an unwritable
    ``PROMETHEUS_MULTIPROC_DIR``) is logged, once at ERROR, and the request or run goes on."""

    @functools.wraps(record)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        global _failed_before
        try:
            record(*args, **kwargs)
        except Exception:
            level = logging.DEBUG if _failed_before else logging.ERROR
            _failed_before = True
            logger.log(level, "metrics not recorded", exc_info=True)

    return guarded


def multiprocess_dir() -> str:
    """The directory shared by the processes of this server, or ``""`` in single-process mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


# --- HTTP -----------------------------------------------------------------------
@_never_raises
def observe_request(*, view: str, method: str, status: int, duration_s: float) -> None:
    """Count one answered request and its latency."""
    labels = {
        "view": view or UNMATCHED_VIEW,
        "method": method if method in KNOWN_METHODS else "other",
        "status": str(status),
    }
    HTTP_REQUESTS.labels(**labels).inc()
    HTTP_REQUEST_DURATION.labels(**labels).observe(max(0.0, duration_s))


# --- jobs -------------------------------------------------------------------------
@_never_raises
def observe_run(
    job: str, status: str, duration_s: float | None = None, lateness_s: float | None = None
) -> None:
    """Record the outcome of a run whose handler executed (or was meant to).

    ``status`` is the run's final status (``succeeded``, ``failed``,
    ``timed_out``, ``skipped``); ``duration_s`` the handler's execution time;
    ``lateness_s`` how long after its scheduled time a scheduled tick started
    (``None`` for manual and command runs, which have no due time).
    """
    JOB_RUNS.labels(job=job, status=status).inc()
    if duration_s is not None:
        JOB_DURATION.labels(job=job).observe(max(0.0, duration_s))
    if lateness_s is not None:
        JOB_LATENESS.labels(job=job).observe(max(0.0, lateness_s))
    if status == "succeeded":
        JOB_LAST_SUCCESS.labels(job=job).set(time.time())


@_never_raises
def observe_ticks_not_run(job: str, status: str, count: int = 1) -> None:
    """Count ticks recorded without running the handler (``missed``, or ``skipped`` for overlap)."""
    if count > 0:
        JOB_RUNS.labels(job=job, status=status).inc(count)


@_never_raises
def set_leader(name: str, leading: bool) -> None:
    """Whether this process's job server now leads ``name`` (call on every change of term)."""
    JOB_SERVER_LEADER.labels(name=name).set(1 if leading else 0)


_synced_names: set[str] = set()  # the JOB_NAMEs of the job servers sync_leader has seen here


class JobServerState(Protocol):
    """What :func:`sync_leader` reads of a job server (:class:`stayy.scheduling.server.JobServer`)."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> str: ...


def sync_leader(server: JobServerState | None) -> None:
    """Make this process's leader gauge match its job server (done before each scrape).

    A process whose job server has stopped (or never started) leads nothing.
    """
    if server is not None:
        _synced_names.add(server.name)
    leading = server.name if server is not None and server.state == "leader" else None
    for name in _synced_names:
        set_leader(name, name == leading)


# --- exposition ---------------------------------------------------------------------
def render() -> tuple[bytes, str]:
    """The current metrics of every process of this server, in the text exposition format."""
    path = multiprocess_dir()
    if path:
        # A fresh registry per scrape: the collector reads the other processes' files now.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

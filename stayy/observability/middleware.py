"""Counts, times and logs every HTTP request, and answers the operator endpoints directly.

The metric label is the URL pattern's view name
(``request.resolver_match.view_name``, e.g. ``job-list``), never the path, so
the number of series stays bounded. Put the middleware first in
``MIDDLEWARE`` so the time covers the whole stack. Each request is logged
once on ``stayy.http`` in the service's log format (method, path, status,
view and duration as ``http`` fields in JSON); successful probes only at DEBUG.

``/healthz``, ``/readyz`` and ``/metrics`` are answered here, before the rest
of the stack: load balancers, orchestrators and Prometheus reach a process
by its address (a ``Host`` header that is not in ``ALLOWED_HOSTS``) and over
plain HTTP, and these responses carry nothing that depends on the host, a
session or a cookie. ``/metrics`` keeps its bearer token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import Resolver404, resolve

from stayy.observability import metrics

logger = logging.getLogger("stayy.http")

PROBE_VIEWS = frozenset({"healthz", "readyz", "metrics"})
#: Answered without the rest of the middleware stack (see the module docstring).
DIRECT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def view_name(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None and match.view_name else metrics.UNMATCHED_VIEW


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = None
        if request.path_info in DIRECT_PATHS:
            response = self._answer_directly(request)
        if response is None:
            response = self.get_response(request)
        self._record(request, response, time.perf_counter() - started)
        return response

    def _answer_directly(self, request: HttpRequest) -> HttpResponseBase | None:
        try:
            match = resolve(request.path_info)
        except Resolver404:  # not routed in this URLconf: the normal stack answers
            return None
        if match.view_name not in PROBE_VIEWS:
            return None
        request.resolver_match = match
        try:
            return match.func(request, *match.args, **match.kwargs)
        except Exception:
            logger.exception("%s failed", request.path_info)
            return HttpResponse("Internal Server Error\n", status=500, content_type="text/plain")

    def _record(self, request: HttpRequest, response: HttpResponseBase, duration: float) -> None:
        view = view_name(request)
        method = request.method or ""
        status = response.status_code
        metrics.observe_request(view=view, method=method, status=status, duration_s=duration)
        level = logging.DEBUG if view in PROBE_VIEWS and status < 400 else logging.INFO
        if not logger.isEnabledFor(level):
            return
        duration_ms = round(duration * 1000, 1)
        logger.log(
            level,
            "%s %s %s %.1f ms (%s)",
            method,
            request.path,
            status,
            duration_ms,
            view,
            extra={
                "http": {
                    "method": method,
                    "path": request.path,
                    "status": status,
                    "view": view,
                    "duration_ms": duration_ms,
                }
            },
        )

"""``/healthz``, ``/readyz`` and ``/metrics``: plain Django views, outside the REST API.

* ``/healthz`` — the process answers; touches nothing else, so a database
  outage does not make the orchestrator restart healthy workers.
* ``/readyz`` — the database and Redis are reachable: 200 or 503, always JSON,
  never a 500; names a failed check ``"down"`` without its error (which can
  name hosts and users: it goes to the log, once per change); also tells this
  process's job server state.
* ``/metrics`` — Prometheus text format, behind ``Authorization: Bearer
  <METRICS_TOKEN>``; 404 while ``METRICS_TOKEN`` is unset, 401 on a missing or
  wrong token.
"""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from stayy.conf import stayy_settings
from stayy.observability import metrics, probes
from stayy.runtime import embedded

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def job_server_state() -> str:
    """``disabled`` (``JOB_ENABLE`` off, or no job server in this process), else its state."""
    server = embedded.current()
    if not stayy_settings.job_enable or server is None:
        return "disabled"
    return server.state


_last_unready: dict[str, str] | None = None


def _log_change(unready: dict[str, str] | None) -> None:
    """Log when readiness changes, not on every probe (they come every few seconds)."""
    global _last_unready
    if unready == _last_unready:
        return
    if unready is not None:
        logger.warning("not ready: %s", ", ".join(f"{name} {value}" for name, value in unready.items()))
    else:
        logger.warning("ready again")
    _last_unready = unready


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str]
    try:
        checks = {"database": probes.database(), "redis": probes.redis_ping()}
        job_server = job_server_state()
    except Exception as exc:  # readiness answers 503, never 500, whatever broke
        logger.exception("readiness check failed")
        checks, job_server = {"readyz": probes.describe_down(exc)}, "unknown"
    ready = all(value in (probes.OK, probes.NOT_CONFIGURED) for value in checks.values())
    _log_change(None if ready else checks)
    public = {
        name: value if value in (probes.OK, probes.NOT_CONFIGURED) else "down"
        for name, value in checks.items()
    }
    body = {"status": "ready" if ready else "unavailable", "checks": public, "job_server": job_server}
    return JsonResponse(body, status=200 if ready else 503)


def _bearer_token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    expected = getattr(settings, "METRICS_TOKEN", "")
    if not expected:
        return HttpResponse("Not Found\n", status=404, content_type="text/plain")
    given = _bearer_token(request)
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    metrics.sync_leader(embedded.current())
    output, content_type = metrics.render()
    return HttpResponse(output, content_type=content_type)

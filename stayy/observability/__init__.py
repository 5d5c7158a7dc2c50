"""Operator-facing surface of the service: health, readiness, metrics and logs.

* :mod:`~stayy.observability.views` — ``/healthz``, ``/readyz`` and ``/metrics``;
* :mod:`~stayy.observability.probes` — the dependency checks behind ``/readyz``;
* :mod:`~stayy.observability.metrics` — the Prometheus metrics and the
  ``observe_*`` functions the HTTP middleware and the job runtime call;
* :mod:`~stayy.observability.middleware` — counts, times and logs each request;
* :mod:`~stayy.observability.logcontext` / :mod:`~stayy.observability.logformat`
  — the run context on every log record and the plain/JSON formats.
"""

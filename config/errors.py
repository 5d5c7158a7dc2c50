"""The answer to a request that raised: 503 while the database is unreachable, JSON under /api/.

Django turns any exception a view or middleware lets through into the
``handler500`` view. A database that is down or restarting is not a bug of
this service: clients and load balancers should see ``503 Service
Unavailable`` with ``Retry-After`` and retry, not a ``500``. Everything else
stays a 500 (logged with its traceback by Django): JSON for the API, Django's
page for the admin. A request Django refuses as suspicious (``handler400``)
gets JSON under ``/api/`` too; a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``
(Django's limit, which DRF's parsers read through) is a ``413``.
"""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework.exceptions import server_error as api_server_error

RETRY_AFTER_SECONDS = 5


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: Django calls it inside the ``except`` block of the request's exception."""
    exc = sys.exc_info()[1]
    if isinstance(exc, OperationalError | InterfaceError):
        response = JsonResponse({"detail": "The database is unavailable; try again shortly."}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if request.path.startswith("/api/"):
        return api_server_error(request)
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler400``: a request Django refused (a body over its limit, a suspicious header)."""
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return JsonResponse({"detail": f"The request body is over the limit of {limit} bytes."}, status=413)
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)

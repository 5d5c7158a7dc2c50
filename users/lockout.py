"""The sign-in limiter's two hooks into django-axes: whose address a request is, and the lockout answer.

The admin login and ``POST /api/auth/token/`` share one limiter (django-axes,
configured in ``config/settings.py``; its counts live in
:mod:`users.repository.sign_in_attempts`). A refused sign-in answers 429 with
``Retry-After``: JSON under ``/api/``, a page in the admin's style elsewhere.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from rest_framework.throttling import BaseThrottle

from users.repository.sign_in_attempts import seconds_until_unlocked

LOCKED_OUT = "Too many failed sign-ins; try again in {seconds} seconds."


def client_address(request: HttpRequest) -> str | None:
    """The client's address by the service's one rule (DRF's, with ``DJANGO_TRUSTED_PROXIES`` as its
    ``NUM_PROXIES``): ``REMOTE_ADDR``, or the ``X-Forwarded-For`` entry the outermost trusted proxy
    added, so a client cannot pick its own address. An entry that is no IP address gives
    ``REMOTE_ADDR``."""
    ident = BaseThrottle().get_ident(request)  # type: ignore[arg-type]  # it reads only request.META
    for candidate in (ident, request.META.get("REMOTE_ADDR")):
        try:
            return str(ipaddress.ip_address((candidate or "").strip()))
        except ValueError:
            continue
    return None


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """429 with ``Retry-After``; a JSON body for the API, the admin's page for the admin login."""
    seconds = seconds_until_unlocked(request, credentials)
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": LOCKED_OUT.format(seconds=seconds)}, status=429)
    else:
        context = {"title": "Too many failed sign-ins", "seconds": seconds}
        response = TemplateResponse(request, "users/lockout.html", context, status=429)
        response.render()
    response["Retry-After"] = str(seconds)
    return response

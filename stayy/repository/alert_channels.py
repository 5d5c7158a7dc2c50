"""Sending one alert: a signed JSON POST to the webhook, or an email to ``ADMINS``.

The webhook's body is the alert's JSON with ``sent_at`` added, signed with
``X-Stayy-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` under ``JOB_ALERT_WEBHOOK_SECRET``.
Any answer but a 2xx, a timeout or a connection error is a failed attempt (:class:`SendFailed`).
An attempt that sent the whole alert and then got no answer (a read timeout, a broken connection)
may have been delivered: it says so (``maybe_delivered``), and is never tried again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import mail_admins

#: Seconds to connect to the webhook, and for its whole exchange.
WEBHOOK_CONNECT_TIMEOUT = 5.0
WEBHOOK_TIMEOUT = 10.0
SIGNATURE_HEADER = "X-Stayy-Signature"


class SendFailed(Exception):
    """An attempt that did not deliver the alert; the message says why. ``maybe_delivered``: the
    alert was sent whole but no answer came, so the receiver may have it."""

    def __init__(self, message: str, *, maybe_delivered: bool = False) -> None:
        super().__init__(message)
        self.maybe_delivered = maybe_delivered


def signature(body: bytes, *, secret: str) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(body: dict[str, Any], *, url: str, secret: str, delivery_id: int) -> None:
    """POST ``body`` as JSON, signed; raises :class:`SendFailed` unless the answer is a 2xx."""
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(raw, secret=secret),
        "X-Stayy-Event": str(body.get("event", "")),
        "X-Stayy-Delivery": str(delivery_id),
        "User-Agent": "stayy-alerts",
    }
    timeout = httpx.Timeout(WEBHOOK_TIMEOUT, connect=WEBHOOK_CONNECT_TIMEOUT)
    try:
        response = httpx.post(url, content=raw, headers=headers, timeout=timeout, follow_redirects=False)
    except (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError) as exc:
        # The request went out whole; whether the receiver acted on it is unknown.
        raise SendFailed(f"{type(exc).__name__}: {exc}", maybe_delivered=True) from None
    except httpx.HTTPError as exc:
        raise SendFailed(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= response.status_code < 300:
        raise SendFailed(f"HTTP {response.status_code}: {response.text[:200]}")


def email_enabled() -> bool:
    return bool(settings.ADMINS)


def email_admins(*, subject: str, text: str) -> None:
    """Mail ``ADMINS`` (Django's ``mail_admins``); raises :class:`SendFailed` if the server refuses."""
    try:
        mail_admins(subject, text, fail_silently=False)
    except OSError as exc:  # smtplib's errors are OSErrors, like socket timeouts and refusals
        raise SendFailed(f"{type(exc).__name__}: {exc}") from None

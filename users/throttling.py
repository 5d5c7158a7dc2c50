"""Throttling of sign-ins: too many failed ones from one client address answer 429.

Only failures count (a client that signs in correctly is never slowed down);
once ``AUTH_FAILURE_RATE`` failures fall in its window, every sign-in from that
address, right or wrong, answers 429 with ``Retry-After`` until the oldest
failure leaves the window. The history lives in Django's cache (Redis in
production, so all workers and hosts share it), kept through
:mod:`users.services.accounts`. The cache is a safeguard, never a dependency:
when it is unreachable the throttle lets requests through and logs it,
instead of turning every sign-in into a 500.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from users.services import accounts


class SignInFailureThrottle(SimpleRateThrottle):
    """Counts failed sign-ins per client address; refuses sign-ins past the rate.

    The client address is ``REMOTE_ADDR``, or the ``X-Forwarded-For`` entry
    added by the outermost of ``DJANGO_TRUSTED_PROXIES`` proxies, so a client
    cannot pick its own address by sending that header.
    """

    scope = "sign_in_failures"

    def __init__(self) -> None:
        super().__init__()
        limit, window = self.parse_rate(self.rate)
        self.limit: int = limit or 0  # 0: off (no rate configured)
        self.window: float = float(window or 0)
        self.history: list[float] = []

    def get_rate(self) -> str | None:
        # Read when the throttle is built, not when the class is (tests and operators change it).
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        return None if rate is None else str(rate)

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def _recent_failures(self, request: Request, view: Any) -> list[float] | None:
        """The failures still inside the window, newest first; ``None`` if the cache is unreachable."""
        self.key = self.get_cache_key(request, view)
        self.now = self.timer()
        return accounts.sign_in_failures_recent(key=self.key, since=self.now - self.window)

    def allow_request(self, request: Request, view: Any) -> bool:
        if not self.limit:
            return True
        history = self._recent_failures(request, view)
        if history is None:
            return True
        self.history = history
        return len(history) < self.limit

    def wait(self) -> float | None:
        """Seconds until enough failures leave the window for one more sign-in."""
        if not self.limit or len(self.history) < self.limit:
            return None
        return max(0.0, self.history[self.limit - 1] + self.window - self.now)

    def record_failure(self, request: Request, view: Any) -> None:
        """Count one failed sign-in of the request's client address."""
        if not self.limit:
            return
        history = self._recent_failures(request, view)
        if history is None:
            return
        self.history = [self.now, *history]
        key = self.get_cache_key(request, view)
        accounts.sign_in_failures_store(key=key, history=self.history, window=self.window)

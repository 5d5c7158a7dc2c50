"""Failed sign-ins in the database (django-axes' ``AccessAttempt`` rows), and the two limits over them.

axes counts failures per (username, client address) against ``AXES_FAILURE_LIMIT``
(``AUTH_FAILURE_LIMIT``); this handler adds a second count, every failure from one
client address, against ``SIGN_IN_ADDRESS_FAILURE_LIMIT`` (``AUTH_ADDRESS_FAILURE_LIMIT``).
A failure is one row update with ``failures = failures + 1`` under a row lock, so
failures from concurrent workers and hosts all count. Failures older than the
cool-off (``AXES_COOLOFF_TIME``) are deleted and no longer count.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, cast

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.db.models import Max, QuerySet, Sum
from django.http import HttpRequest
from django.utils import timezone

from users.conf import users_settings


def address_failure_limit() -> int:
    return users_settings.sign_in_address_failure_limit


class SignInAttemptsHandler(AxesDatabaseHandler):
    """axes' database handler with the per-address limit beside axes' per (username, address) one."""

    def _address_attempts(self, request: Any) -> QuerySet[AccessAttempt]:
        return AccessAttempt.objects.filter(
            ip_address=request.axes_ip_address, attempt_time__gte=get_cool_off_threshold(request)
        )

    def _locking_counts(self, request: Any, credentials: dict | None) -> list[tuple[QuerySet, int]]:
        """(attempts, limit) of both counts: this username from this address, and this address."""
        (pair,) = self.get_user_attempts(request, credentials)
        return [
            (pair, get_failure_limit(request, credentials)),
            (self._address_attempts(request), address_failure_limit()),
        ]

    def lock_ends_at(self, request: Any, credentials: dict | None = None) -> datetime | None:
        """When the client may try again (at the latest), or ``None`` when it is not locked out."""
        newest: datetime | None = None
        for attempts, limit in self._locking_counts(request, credentials):
            found = attempts.aggregate(failures=Sum("failures_since_start"), newest=Max("attempt_time"))
            if (found["failures"] or 0) >= limit and found["newest"] is not None:
                newest = found["newest"] if newest is None else max(newest, found["newest"])
        cool_off = get_cool_off(request)
        if newest is None or cool_off is None:
            return None
        return newest + cool_off

    def is_locked(self, request: Any, credentials: dict | None = None) -> bool:
        return self.lock_ends_at(request, credentials) is not None

    def user_login_failed(self, sender: Any, credentials: dict, request: Any = None, **kwargs: Any) -> None:
        """Count the failure (axes); the failure that reaches the address's limit is refused as well."""
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or request.axes_locked_out:
            return
        failures = self._address_attempts(request).aggregate(total=Sum("failures_since_start"))["total"]
        if (failures or 0) >= address_failure_limit():
            request.axes_locked_out = True
            request.axes_credentials = credentials
            user_locked_out.send(
                "axes",
                request=request,
                username=get_client_username(request, credentials),
                ip_address=request.axes_ip_address,
            )


def seconds_until_unlocked(request: HttpRequest, credentials: dict | None) -> int:
    """Whole seconds until a locked-out client may sign in again (at least 1)."""
    AxesProxyHandler.update_request(request)
    handler = cast(SignInAttemptsHandler, AxesProxyHandler.get_implementation())
    ends = handler.lock_ends_at(request, credentials)
    if ends is None:  # unlocked meanwhile
        return 1
    return max(1, math.ceil((ends - timezone.now()).total_seconds()))

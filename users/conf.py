"""The settings the users app reads, through one object.

``config/settings.py`` parses and validates the environment; this module only
gives the users app typed attribute access, like :mod:`stayy.conf`. A property
is its setting's name in lower case, ``THIRD_PARTY_USERS_`` shortened to
``third_party_``.
"""

from __future__ import annotations

from django.conf import settings


class UsersSettings:
    """Attribute access to the users app's settings, re-read on every access (tests override them)."""

    @property
    def third_party_url(self) -> str:
        """The third-party user service's base URL, credentials included; empty: no sync."""
        return str(settings.THIRD_PARTY_USERS_URL or "")

    @property
    def third_party_token(self) -> str:
        """Sent as ``Authorization: Bearer``; empty: none."""
        return str(settings.THIRD_PARTY_USERS_TOKEN or "")

    @property
    def third_party_connect_timeout(self) -> float:
        return float(settings.THIRD_PARTY_USERS_CONNECT_TIMEOUT)

    @property
    def third_party_read_timeout(self) -> float:
        return float(settings.THIRD_PARTY_USERS_READ_TIMEOUT)

    @property
    def third_party_request_deadline(self) -> float:
        """Seconds within which a whole request (connection, wait, body) completes."""
        return float(settings.THIRD_PARTY_USERS_REQUEST_DEADLINE)

    @property
    def third_party_max_page_bytes(self) -> int:
        return int(settings.THIRD_PARTY_USERS_MAX_PAGE_BYTES)

    @property
    def third_party_max_retries(self) -> int:
        """Retries of one page after a transient failure (the attempts are one more)."""
        return int(settings.THIRD_PARTY_USERS_MAX_RETRIES)

    @property
    def third_party_backoff(self) -> float:
        """The first wait between retries, in seconds; also the jitter's bound."""
        return float(settings.THIRD_PARTY_USERS_BACKOFF)

    @property
    def third_party_backoff_max(self) -> float:
        """The longest wait between retries, a server's ``Retry-After`` included."""
        return float(settings.THIRD_PARTY_USERS_BACKOFF_MAX)

    @property
    def third_party_sync_pause(self) -> float:
        """The sync's wait after a page, as a multiple of that page's cost; 0: none."""
        return float(settings.THIRD_PARTY_USERS_SYNC_PAUSE)

    @property
    def sign_in_address_failure_limit(self) -> int:
        """Failed sign-ins from one client address that lock it out (``AUTH_ADDRESS_FAILURE_LIMIT``)."""
        return int(settings.SIGN_IN_ADDRESS_FAILURE_LIMIT)


users_settings = UsersSettings()

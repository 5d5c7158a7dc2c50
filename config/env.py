"""Typed readers for environment variables.

Every setting of the service is read from the environment exactly once, in
``config/settings.py``, through these helpers. A bad value raises
:class:`ConfigError` whose message names the variable; ``manage.py``,
``config/wsgi.py`` and ``gunicorn.conf.py`` turn it into one clear line on
stderr and a non-zero exit instead of a traceback.
"""

from __future__ import annotations

import json
import os
from email.utils import getaddresses
from typing import Any
from urllib.parse import urlsplit

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(Exception):
    """A setting has a value the service cannot start with."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"invalid setting {name}: {problem}")
        self.name = name
        self.problem = problem


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(name, f"expected one of 1/0, true/false, yes/no, on/off; got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(name, f"expected a whole number; got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(name, f"must be at least {minimum}; got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(name, f"expected a number; got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(name, f"expected a finite number; got {raw!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(name, f"must be at least {minimum:g}; got {value:g}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_json_object(name: str) -> dict[str, Any]:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(name, f"not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(value, dict):
        raise ConfigError(name, f"expected a JSON object; got {type(value).__name__}")
    return value


def masked_url(url: str) -> str:
    """``url`` with the credentials it may carry (``user:password@``) written as ``***@``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


def env_url(name: str, default: str = "", *, schemes: tuple[str, ...]) -> str:
    """A URL; an error message shows it with its credentials masked (:func:`masked_url`)."""
    value = env_str(name, default)
    if not value:
        return ""
    parts = urlsplit(value)
    shown = masked_url(value)
    if parts.scheme not in schemes:
        raise ConfigError(name, f"scheme must be one of {', '.join(schemes)}; got {shown!r}")
    if parts.scheme in ("http", "https", "redis", "rediss") and not parts.hostname:
        raise ConfigError(name, f"no host in {shown!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ConfigError(name, f"malformed port in {shown!r}") from None
    return value


def env_token(name: str, *, conflicting_url: str = "") -> str:
    """A bearer token: one line of visible ASCII, never echoed in an error; it cannot go with credentials
    in ``conflicting_url`` (both would be the request's ``Authorization``)."""
    value = env_str(name)
    if not value:
        return ""
    if not all("!" <= char <= "~" for char in value):
        raise ConfigError(name, "expected visible ASCII characters without spaces (the value is not shown)")
    if "@" in urlsplit(conflicting_url).netloc:
        raise ConfigError(name, "set, and the service URL carries credentials too; use one of the two")
    return value


def env_proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """``X-Forwarded-Proto: https`` → Django's ``("HTTP_X_FORWARDED_PROTO", "https")``; unset: ``None``."""
    raw = env_str(name)
    if not raw:
        return None
    header, colon, value = raw.partition(":")
    header, value = header.strip(), value.strip()
    if not colon or not header or not value or not all(c.isalnum() or c == "-" for c in header):
        raise ConfigError(name, f"expected 'Header-Name: value' like 'X-Forwarded-Proto: https'; got {raw!r}")
    return "HTTP_" + header.upper().replace("-", "_"), value


def env_origins(name: str) -> list[str]:
    """Comma-separated origins with scheme, e.g. ``https://api.example.com,https://*.example.com``."""
    origins = env_list(name, [])
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ConfigError(name, f"expected origins like https://api.example.com; got {origin!r}")
    return origins


def env_secret_key(name: str, *, required: bool) -> str:
    """The secret key; when ``required`` (debug off) it must be present and look random."""
    value = env_str(name)
    if not required:
        return value
    how = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    if not value:
        raise ConfigError(name, f"required when DJANGO_DEBUG is off; {how}")
    # Django's own deploy check (security.W009) plus the placeholders of our docs.
    weak = len(value) < 50 or len(set(value)) < 5 or value.startswith("django-insecure-")
    if weak or "change-me" in value.lower():
        raise ConfigError(name, f"not a real secret (needs 50+ random characters); {how}")
    return value


def env_admins(name: str) -> list[tuple[str, str]]:
    """``Ops <ops@example.com>, dev@example.com`` → Django's ``ADMINS``: ``[("Ops", "ops@example.com")]``;
    an address alone is its own name."""
    raw = env_str(name)
    if not raw:
        return []
    admins = []
    for item in raw.split(","):
        if not item.strip():
            continue
        parsed = getaddresses([item])
        display, address = parsed[0] if len(parsed) == 1 else ("", "")
        local, at, domain = address.partition("@")
        if not (local and at and "." in domain) or any(c.isspace() for c in address):
            raise ConfigError(
                name,
                f"expected addresses like 'Ops <ops@example.com>, dev@example.com'; got {item.strip()!r}",
            )
        admins.append((display or address, address))
    return admins


def env_sentry_dsn(name: str) -> str:
    """A Sentry DSN (``https://<public key>@<host>/<project id>``), checked the way sentry-sdk reads it."""
    value = env_str(name)
    if not value:
        return ""
    from sentry_sdk.utils import BadDsn, Dsn

    try:
        Dsn(value)
    except BadDsn as exc:
        raise ConfigError(
            name, f"not a Sentry DSN ({exc}); expected https://<key>@<host>/<project id>"
        ) from None
    return value

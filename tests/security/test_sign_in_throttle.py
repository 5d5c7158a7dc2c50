"""Failed sign-ins are throttled per client address on the shared cache; a cache outage is never a 500."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings
from redis.exceptions import RedisError
from rest_framework.test import APIClient

from tests.support import free_port

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token/"
GOOD = {"username": "plain", "password": "plain-pass-123"}
BAD = {"username": "plain", "password": "wrong"}


@pytest.fixture
def rate(settings) -> Callable[..., None]:
    """Set ``AUTH_FAILURE_RATE`` (and optionally the trusted proxy count) for the test."""

    def set_rate(value: str | None, *, proxies: int = 0) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"sign_in_failures": value},
            "NUM_PROXIES": proxies,
        }

    return set_rate


def post(body: dict[str, str], **extra: Any) -> Any:
    return APIClient().post(TOKEN_URL, body, format="json", **extra)


def test_the_default_rate_is_set_and_throttles(plain_user):
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["sign_in_failures"] == "10/h"
    codes = [post(BAD).status_code for _ in range(11)]
    assert codes == [400] * 10 + [429]


def test_429_with_retry_after_once_the_configured_failures_are_reached(plain_user, rate):
    rate("3/minute")
    assert [post(BAD).status_code for _ in range(3)] == [400, 400, 400]

    refused = post(GOOD)  # even the right password: the address is blocked for now

    assert refused.status_code == 429
    retry_after = int(refused["Retry-After"])
    assert 1 <= retry_after <= 60
    assert "throttled" in refused.json()["detail"].lower()
    assert "token" not in refused.json()


def test_successful_sign_ins_are_not_counted(plain_user, rate):
    rate("3/minute")
    assert [post(GOOD).status_code for _ in range(6)] == [200] * 6
    assert [post(BAD).status_code for _ in range(3)] == [400] * 3
    assert post(GOOD).status_code == 429


def test_missing_fields_count_as_failures(plain_user, rate):
    rate("2/minute")
    assert [post({}).status_code for _ in range(2)] == [400, 400]
    assert post({}).status_code == 429


def test_sign_ins_are_allowed_again_once_the_window_has_passed(plain_user, rate):
    rate("2/second")
    assert [post(BAD).status_code for _ in range(2)] == [400, 400]
    refused = post(GOOD)
    assert refused.status_code == 429
    time.sleep(math.ceil(float(refused["Retry-After"])) + 0.1)
    assert post(GOOD).status_code == 200


def test_the_failures_are_counted_in_the_shared_cache(plain_user, rate):
    """The history is in Django's cache (Redis in production), so all workers and hosts share it."""
    rate("5/minute")
    for _ in range(3):
        post(BAD, REMOTE_ADDR="203.0.113.7")
    history = cache.get("throttle_sign_in_failures_203.0.113.7")
    assert isinstance(history, list) and len(history) == 3


def test_other_addresses_are_not_affected(plain_user, rate):
    rate("2/minute")
    for _ in range(2):
        post(BAD, REMOTE_ADDR="203.0.113.7")
    assert post(GOOD, REMOTE_ADDR="203.0.113.7").status_code == 429
    assert post(GOOD, REMOTE_ADDR="198.51.100.9").status_code == 200


def test_a_client_cannot_dodge_it_with_x_forwarded_for(plain_user, rate):
    """Without trusted proxies, X-Forwarded-For is ignored: it is whatever the client wrote."""
    rate("2/minute", proxies=0)
    for i in range(2):
        post(BAD, HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    assert post(GOOD, HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_address_counts(plain_user, rate):
    rate("2/minute", proxies=1)
    for _ in range(2):
        post(BAD, HTTP_X_FORWARDED_FOR="spoofed, 192.0.2.1")
    assert post(GOOD, HTTP_X_FORWARDED_FOR="192.0.2.1").status_code == 429
    # Another client behind the same proxy (same REMOTE_ADDR) is not blocked.
    assert post(GOOD, HTTP_X_FORWARDED_FOR="192.0.2.2").status_code == 200


def test_off_switches_the_throttle_off(plain_user, rate):
    rate(None)
    assert {post(BAD).status_code for _ in range(15)} == {400}


def test_revoking_a_token_is_not_throttled(plain_user, rate):
    rate("1/minute")
    token = post(GOOD).json()["token"]
    post(BAD)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.delete(TOKEN_URL).status_code == 204


def test_with_the_cache_unreachable_sign_ins_still_work(plain_user, rate, caplog):
    """Redis down (here: a cache pointed at a closed port): no 500, no throttling, a log line."""
    rate("2/minute")
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
        }
    }
    with (
        override_settings(CACHES=unreachable),
        caplog.at_level(logging.WARNING, logger="users.repository.cache"),
    ):
        with pytest.raises(RedisError):  # the cache really is down
            cache.get("anything")
        assert [post(BAD).status_code for _ in range(4)] == [400] * 4
        assert post(GOOD).status_code == 200

    warnings = [r.getMessage() for r in caplog.records if r.name == "users.repository.cache"]
    assert warnings and all("cache unreachable" in message for message in warnings)

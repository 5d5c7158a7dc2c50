"""User stats: the aggregate, the cache in front of it, and the endpoint when Redis is down."""

from __future__ import annotations

import logging
import socket
import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from users.models import User
from users.repository import cache as stats_cache
from users.services import accounts

pytestmark = pytest.mark.django_db

STATS_URL = "/api/users/stats/"

DEAD_REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        # Port 1 refuses connections at once, like a stopped Redis.
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
    }
}

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="the suite runs without REDIS_URL")


@pytest.fixture
def population(make_user, plain_user):
    """6 users: 4 local (1 inactive), 2 third-party (1 inactive); created 0 h, 2 d and 30 d ago."""
    make_user("a")
    make_user("b", is_active=False)
    make_user("c", source=User.Source.THIRD_PARTY, external_id="1")
    make_user("d", source=User.Source.THIRD_PARTY, external_id="2", is_active=False)
    now = timezone.now()
    User.objects.filter(username__in=["a", "c"]).update(created_at=now - timedelta(days=2))
    User.objects.filter(username__in=["b", "d"]).update(created_at=now - timedelta(days=30))
    make_user("e")


EXPECTED = {
    "total": 6,
    "active": 4,
    "inactive": 2,
    "by_source": {"local": 4, "third_party": 2},
    "new_last_24h": 2,
    "new_last_7d": 4,
}


def _counts(stats) -> dict:
    return {key: value for key, value in stats.items() if key != "computed_at"}


def test_compute_counts_everything_in_one_query(population):
    with CaptureQueriesContext(connection) as queries:
        stats = accounts.user_stats_compute()

    assert _counts(stats) == EXPECTED
    assert len(queries) == 1


def test_compute_on_an_empty_table_is_all_zeros():
    stats = accounts.user_stats_compute()

    assert _counts(stats) == {
        "total": 0,
        "active": 0,
        "inactive": 0,
        "by_source": {"local": 0, "third_party": 0},
        "new_last_24h": 0,
        "new_last_7d": 0,
    }


def test_endpoint_computes_on_a_miss_and_stores_the_result(user_client, population):
    assert stats_cache.stats_get() is None

    response = user_client.get(STATS_URL)

    assert response.status_code == 200
    assert {k: v for k, v in response.json().items() if k != "computed_at"} == EXPECTED
    assert _counts(stats_cache.stats_get()) == EXPECTED


def test_endpoint_serves_the_cached_stats_after_a_refresh(user_client, population):
    refreshed = accounts.user_stats_refresh()
    User.objects.create_user(username="late", email="late@example.com")

    with CaptureQueriesContext(connection) as queries:
        response = user_client.get(STATS_URL)

    assert response.status_code == 200
    assert len(queries) == 0
    # The row added after the refresh is not counted until the next refresh.
    assert response.json()["total"] == 6
    assert response.json()["computed_at"].replace("Z", "+00:00") == refreshed["computed_at"].isoformat()


@needs_redis
def test_stats_round_trip_through_redis(population):
    stats = accounts.user_stats_compute()

    assert stats_cache.stats_set(dict(stats), timeout=60) is True
    assert stats_cache.stats_get() == stats
    client = redis.Redis.from_url(settings.REDIS_URL)
    assert 0 < client.ttl(cache.make_key(stats_cache.STATS_KEY)) <= 60


@needs_redis
def test_an_entry_of_the_wrong_shape_is_a_miss():
    cache.set(stats_cache.STATS_KEY, "garbage", timeout=60)

    assert stats_cache.stats_get() is None


@override_settings(CACHES=DEAD_REDIS)
def test_with_redis_down_reads_miss_and_writes_are_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="users.repository.cache"):
        assert stats_cache.stats_get() is None
        stats_cache.breaker.reset()  # the read tripped it; let the write reach the dead Redis too
        assert stats_cache.stats_set({"total": 1}, timeout=60) is False

    messages = [record.getMessage() for record in caplog.records]
    assert any("read failed" in message for message in messages)
    assert any("write failed" in message for message in messages)


@override_settings(CACHES=DEAD_REDIS)
def test_with_redis_down_the_endpoint_answers_from_the_database(user_client, population):
    response = user_client.get(STATS_URL)

    assert response.status_code == 200
    assert response.json()["total"] == 6


@pytest.fixture
def hung_redis():
    """A port that accepts connections (the kernel's backlog) and never answers, like a stopped Redis."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        caches = {"default": {**DEAD_REDIS["default"], "LOCATION": f"redis://127.0.0.1:{port}/0"}}
        with override_settings(CACHES=caches):
            yield


def _timed(call):
    began = time.monotonic()
    result = call()
    return result, time.monotonic() - began


def test_after_a_cache_timeout_the_cache_is_skipped_for_the_cool_down(hung_redis, caplog):
    timeout = DEAD_REDIS["default"]["OPTIONS"]["socket_timeout"]
    with caplog.at_level(logging.WARNING, logger="users.repository.cache"):
        first, first_took = _timed(stats_cache.stats_get)
        later = [_timed(stats_cache.stats_get) for _ in range(5)]
        stored, store_took = _timed(lambda: stats_cache.stats_set({"total": 1}, timeout=60))

    assert first is None
    assert first_took >= timeout * 0.9, "the first read did not wait for Redis at all"
    assert stored is False
    # Skipped without a round trip: each well under the socket timeout, and only one log line.
    assert all(value is None and took < timeout / 2 for value, took in later)
    assert store_took < timeout / 2
    assert len(caplog.records) == 1


def test_the_cache_is_tried_again_after_the_cool_down(hung_redis, monkeypatch):
    monkeypatch.setattr(stats_cache.breaker, "cool_down", 0.2)
    timeout = DEAD_REDIS["default"]["OPTIONS"]["socket_timeout"]
    assert stats_cache.stats_get() is None
    assert stats_cache.breaker.is_open()
    time.sleep(0.3)

    assert not stats_cache.breaker.is_open()
    _, took = _timed(stats_cache.stats_get)
    assert took >= timeout * 0.9, "the cache was not tried again after the cool-down"

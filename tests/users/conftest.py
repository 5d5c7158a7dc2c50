"""Fixtures of the users tests: user rows, and a stats cache no other test run can touch."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from users.models import User
from users.repository import cache as stats_cache


@pytest.fixture(autouse=True)
def private_cache() -> Iterator[None]:
    """Give each test its own key prefix, so parallel runs and other suites sharing Redis never collide."""
    caches = {name: dict(config) for name, config in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"test-users-{uuid.uuid4().hex}"
    with override_settings(CACHES=caches):
        yield
        # Never cache.clear(): on Redis that is FLUSHDB, which would wipe everyone's keys.
        stats_cache.cache.delete(stats_cache.STATS_KEY)


@pytest.fixture
def make_user(db) -> Callable[..., User]:
    """Create a user; ``make_user("ann")`` gives username ann and email ann@example.com."""

    def make(username: str, **fields: Any) -> User:
        fields.setdefault("email", f"{username}@example.com")
        return User.objects.create_user(username=username, **fields)

    return make

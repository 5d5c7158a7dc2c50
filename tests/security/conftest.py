"""Fixtures of the security tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import override_settings

from stayy.scheduling import registry


@pytest.fixture(autouse=True)
def private_cache() -> Iterator[None]:
    """A cache key prefix of the test's own: what a test caches here never reaches other tests or other
    runs sharing the Redis (and never cache.clear(): on Redis that wipes everyone's keys)."""
    caches = {name: dict(config) for name, config in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"test-security-{uuid.uuid4().hex}"
    with override_settings(CACHES=caches):
        yield


@pytest.fixture
def restore_registry() -> Iterator[None]:
    """Leave the module-global registry as the app built it, whatever the test did."""
    yield
    registry.apply_overrides({})

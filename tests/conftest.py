"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from stayy.scheduling.tracker import tracker
from tests.support import grant_staff_api
from users.repository.cache import breaker as cache_breaker


@pytest.fixture(autouse=True)
def fast_password_hasher(settings) -> None:
    """The production hasher takes ~0.3 s per password; the suite hashes hundreds."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True, scope="session")
def test_process_stays() -> None:
    """A handler a test left hanging past its timeout and grace must not make the test process leave
    (a real process does: tests/cluster/test_hung_handlers.py); the reason is kept instead."""
    tracker.on_leave = lambda _reason: None


@pytest.fixture(autouse=True)
def closed_cache_breaker() -> None:
    """A test that made the cache fail must not make the next one skip it."""
    cache_breaker.reset()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def staff_user(django_user_model):
    """An operator: staff, holding every permission the staff API asks for."""
    return grant_staff_api(
        django_user_model.objects.create_user(
            username="staff", email="staff@example.com", password="staff-pass-123", is_staff=True
        )
    )


@pytest.fixture
def plain_user(django_user_model):
    return django_user_model.objects.create_user(
        username="plain", email="plain@example.com", password="plain-pass-123"
    )


@pytest.fixture
def staff_client(api_client: APIClient, staff_user) -> APIClient:
    api_client.force_authenticate(staff_user)
    return api_client


@pytest.fixture
def user_client(api_client: APIClient, plain_user) -> APIClient:
    api_client.force_authenticate(plain_user)
    return api_client

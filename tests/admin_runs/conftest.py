"""Fixtures of the run history admin tests: a signed-in superuser."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client


@pytest.fixture
def superuser_client(client: Client) -> Client:
    superuser = get_user_model().objects.create_superuser(
        username="root", email="root@example.com", password="root-pass-123"
    )
    client.force_login(superuser)
    return client

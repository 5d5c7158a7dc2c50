"""Fixtures of the observability tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings

from stayy.runtime import embedded
from tests.observability.support import METRICS_TOKEN


@pytest.fixture
def client() -> Client:
    return Client()


@pytest.fixture
def metrics_token() -> Iterator[str]:
    with override_settings(METRICS_TOKEN=METRICS_TOKEN):
        yield METRICS_TOKEN


@pytest.fixture
def job_settings() -> Iterator[dict[str, Any]]:
    """``JOB_ENABLE`` on with a lease name of this test only; stops the embedded server afterwards."""
    values = {
        **settings.STAYY,
        "JOB_ENABLE": True,
        "JOB_NAME": f"obs-test-{uuid.uuid4().hex[:8]}",
        "LEASE_TTL": 3.0,
        "SHUTDOWN_GRACE": 2.0,
    }
    with override_settings(STAYY=values):
        try:
            yield values
        finally:
            embedded.stop()

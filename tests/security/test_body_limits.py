"""Request bodies are bounded: over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` the API answers a JSON 413."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from users.models import User

pytestmark = pytest.mark.django_db


def oversized_json() -> bytes:
    padding = "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return json.dumps({"username": "huge", "email": "huge@example.com", "display_name": padding}).encode()


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_an_oversized_body_to_the_open_sign_in_is_a_413(content_type):
    body = (
        oversized_json()
        if content_type == "application/json"
        else b"username=a&password=" + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    )
    response = APIClient().generic("POST", "/api/auth/token/", body, content_type=content_type)

    assert response.status_code == 413
    assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in response.json()["detail"]


def test_an_oversized_json_body_creates_nothing(staff_client):
    response = staff_client.generic("POST", "/api/users/", oversized_json(), content_type="application/json")

    assert response.status_code == 413
    assert not User.objects.filter(username="huge").exists()


def test_a_body_just_under_the_limit_is_parsed_as_usual(staff_client):
    overhead = len(json.dumps({"username": "big", "email": "big@example.com", "display_name": ""}))
    name = "y" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE - overhead)
    body = json.dumps({"username": "big", "email": "big@example.com", "display_name": name}).encode()
    assert len(body) == settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = staff_client.generic("POST", "/api/users/", body, content_type="application/json")

    # Parsed and validated: the display name is over its own length limit, a 400 naming the field.
    assert response.status_code == 400
    assert "display_name" in response.json()

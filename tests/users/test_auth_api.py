"""Token sign-in: ``POST /api/auth/token/`` and using the token on the API."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

TOKEN_URL = "/api/auth/token/"
ME_URL = "/api/users/me/"

pytestmark = pytest.mark.django_db


def test_each_sign_in_returns_a_new_token_with_its_expiry(api_client, plain_user):
    before = timezone.now()
    first = api_client.post(TOKEN_URL, {"username": "plain", "password": "plain-pass-123"}, format="json")
    second = api_client.post(TOKEN_URL, {"username": "plain", "password": "plain-pass-123"}, format="json")

    assert first.status_code == 200
    assert set(first.json()) == {"token", "expiry"}
    assert first.json()["token"] != second.json()["token"]
    expiry = datetime.fromisoformat(first.json()["expiry"])
    assert before + timedelta(days=30) <= expiry <= timezone.now() + timedelta(days=30)


@pytest.mark.parametrize(
    "body",
    [
        {"username": "plain", "password": "wrong"},
        {"username": "nobody", "password": "plain-pass-123"},
        {"username": "plain"},
        {},
    ],
)
def test_bad_or_missing_credentials_are_a_400(api_client, plain_user, body):
    response = api_client.post(TOKEN_URL, body, format="json")

    assert response.status_code == 400
    assert "token" not in response.json()


def test_an_inactive_user_gets_no_token(api_client, plain_user):
    plain_user.is_active = False
    plain_user.save()

    response = api_client.post(TOKEN_URL, {"username": "plain", "password": "plain-pass-123"}, format="json")

    assert response.status_code == 400


def test_the_token_authenticates_requests(api_client, plain_user):
    token = api_client.post(
        TOKEN_URL, {"username": "plain", "password": "plain-pass-123"}, format="json"
    ).json()["token"]

    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = api_client.get(ME_URL)

    assert response.status_code == 200
    assert response.json()["username"] == "plain"


def test_a_wrong_token_is_a_401(api_client, plain_user):
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert api_client.get(ME_URL).status_code == 401


def test_the_token_stops_working_once_the_user_is_deactivated(api_client, plain_user, staff_user):
    token = api_client.post(
        TOKEN_URL, {"username": "plain", "password": "plain-pass-123"}, format="json"
    ).json()["token"]
    staff = api_client.__class__()
    staff.force_authenticate(staff_user)
    assert staff.delete(f"/api/users/{plain_user.pk}/").status_code == 204

    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    assert api_client.get(ME_URL).status_code == 401

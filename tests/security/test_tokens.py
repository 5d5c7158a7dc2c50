"""API tokens: revoked with ``DELETE /api/auth/token/``, dead at once when their user is deactivated."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token/"
ME_URL = "/api/users/me/"


def sign_in(username: str, password: str) -> str:
    response = APIClient().post(TOKEN_URL, {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return str(response.json()["token"])


def with_token(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_a_revoked_token_stops_working_and_signing_in_again_gives_a_new_one(plain_user):
    token = sign_in("plain", "plain-pass-123")
    client = with_token(token)
    assert client.get(ME_URL).status_code == 200

    assert client.delete(TOKEN_URL).status_code == 204

    assert client.get(ME_URL).status_code == 401
    assert not Token.objects.filter(key=token).exists()
    new_token = sign_in("plain", "plain-pass-123")
    assert new_token != token
    assert with_token(new_token).get(ME_URL).status_code == 200


def test_revoking_touches_only_the_callers_token(plain_user, staff_user):
    mine = sign_in("plain", "plain-pass-123")
    theirs = sign_in("staff", "staff-pass-123")

    assert with_token(mine).delete(TOKEN_URL).status_code == 204

    assert with_token(theirs).get(ME_URL).status_code == 200


def test_revoking_twice_is_a_401_the_second_time(plain_user):
    client = with_token(sign_in("plain", "plain-pass-123"))
    assert client.delete(TOKEN_URL).status_code == 204
    assert client.delete(TOKEN_URL).status_code == 401


def test_revoking_needs_the_token_itself(plain_user):
    anonymous = APIClient()
    assert anonymous.delete(TOKEN_URL).status_code == 401
    session_only = APIClient()
    session_only.force_login(plain_user)
    assert session_only.delete(TOKEN_URL).status_code == 401
    assert with_token("not-a-token").delete(TOKEN_URL).status_code == 401


def test_signing_in_ignores_a_stale_token_header(plain_user):
    client = with_token("revoked-long-ago")
    response = client.post(TOKEN_URL, {"username": "plain", "password": "plain-pass-123"}, format="json")
    assert response.status_code == 200


@pytest.mark.parametrize("how", ["api", "admin-flag"])
def test_a_deactivated_users_token_stops_working_at_once(plain_user, staff_user, how):
    token = sign_in("plain", "plain-pass-123")
    client = with_token(token)
    assert client.get(ME_URL).status_code == 200

    if how == "api":
        staff = with_token(sign_in("staff", "staff-pass-123"))
        assert staff.delete(f"/api/users/{plain_user.pk}/").status_code == 204
    else:
        plain_user.is_active = False
        plain_user.save(update_fields=["is_active"])

    response = client.get(ME_URL)
    assert response.status_code == 401
    assert "inactive" in response.json()["detail"].lower()
    assert client.get("/api/users/stats/").status_code == 401


def test_a_deactivated_staff_members_token_loses_the_jobs_api(staff_user):
    client = with_token(sign_in("staff", "staff-pass-123"))
    assert client.get("/api/jobs/").status_code == 200
    staff_user.is_active = False
    staff_user.save(update_fields=["is_active"])
    assert client.get("/api/jobs/").status_code == 401
    assert client.post("/api/jobs/stayy.purge_job_runs/run/").status_code == 401

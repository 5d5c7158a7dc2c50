"""API tokens: stored hashed, expiring, revoked with ``DELETE /api/auth/token/`` and by a password change,
dead at once when their user is deactivated."""

from __future__ import annotations

import importlib
import io
from datetime import timedelta

import pytest
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.support import api_token

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
    assert not AuthToken.objects.filter(user=plain_user).exists()
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


def test_tokens_are_stored_as_digests_only(plain_user):
    token = sign_in("plain", "plain-pass-123")
    row = AuthToken.objects.get(user=plain_user)
    stored = [str(value) for value in AuthToken.objects.filter(pk=row.pk).values_list().get()]
    assert token not in stored
    assert len(row.digest) == 128  # SHA-512, hex


def test_a_token_expires_after_its_fixed_lifetime_and_use_does_not_extend_it(plain_user):
    token = sign_in("plain", "plain-pass-123")
    row = AuthToken.objects.get(user=plain_user)
    issued_expiry = row.expiry
    assert with_token(token).get(ME_URL).status_code == 200
    row.refresh_from_db()
    assert row.expiry == issued_expiry  # fixed: using the token does not move its expiry

    AuthToken.objects.filter(pk=row.pk).update(expiry=timezone.now() - timedelta(seconds=1))

    assert with_token(token).get(ME_URL).status_code == 401
    assert not AuthToken.objects.filter(pk=row.pk).exists()  # an expired token is deleted when presented


def test_the_lifetime_comes_from_api_token_ttl_days(plain_user, settings):
    settings.REST_KNOX = {**settings.REST_KNOX, "TOKEN_TTL": timedelta(days=2)}
    sign_in("plain", "plain-pass-123")
    expiry = AuthToken.objects.get(user=plain_user).expiry
    assert timezone.now() + timedelta(days=2) - timedelta(minutes=1) <= expiry
    assert expiry <= timezone.now() + timedelta(days=2)


@pytest.mark.parametrize("how", ["set_password", "admin-form", "changepassword", "set_unusable_password"])
def test_a_password_change_revokes_every_token_of_the_user(plain_user, staff_user, how, monkeypatch):
    mine = [with_token(sign_in("plain", "plain-pass-123")) for _ in range(2)]
    theirs = with_token(sign_in("staff", "staff-pass-123"))

    if how == "set_password":
        plain_user.set_password("a-new-pass-456")
        plain_user.save()
    elif how == "admin-form":
        form = AdminPasswordChangeForm(
            plain_user,
            {"password1": "a-new-pass-456", "password2": "a-new-pass-456", "usable_password": "true"},
        )
        assert form.is_valid(), form.errors
        form.save()
    elif how == "changepassword":
        monkeypatch.setattr("getpass.getpass", lambda prompt="": "a-new-pass-456")
        call_command("changepassword", "plain", stdout=io.StringIO())
    else:
        plain_user.set_unusable_password()
        plain_user.save(update_fields=["password"])

    assert [client.get(ME_URL).status_code for client in mine] == [401, 401]
    assert not AuthToken.objects.filter(user=plain_user).exists()
    assert theirs.get(ME_URL).status_code == 200


def test_saving_other_fields_or_a_hash_upgrade_keeps_the_tokens(plain_user, settings):
    client = with_token(sign_in("plain", "plain-pass-123"))
    plain_user.display_name = "Plain"
    plain_user.save()
    # A sign-in under a stronger hasher re-hashes the stored password: no change of password.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    assert plain_user.check_password("plain-pass-123")
    plain_user.refresh_from_db()
    assert plain_user.password.startswith("pbkdf2_sha256$")

    assert client.get(ME_URL).status_code == 200


def test_the_migration_carries_plain_tokens_over_hashed_and_drops_the_plain_table(plain_user):
    """An upgraded deployment: the old plain-text table holds a token; after the migration the same token
    string still works, only its digest is stored, and the plain table is gone."""
    key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamp, user_id bigint)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)", [key, timezone.now(), plain_user.pk]
        )
    migration = importlib.import_module("users.migrations.0007_api_tokens_hashed")
    from django.apps import apps

    with connection.schema_editor() as editor:
        migration.carry_over_plain_tokens(apps, editor)

    assert "authtoken_token" not in connection.introspection.table_names()
    row = AuthToken.objects.get(user=plain_user)
    assert row.token_key == key[:15] and key not in row.digest
    assert timezone.now() + timedelta(days=29) < row.expiry
    assert with_token(key).get(ME_URL).status_code == 200


def test_tokens_made_by_the_test_helper_work(plain_user):
    assert with_token(api_token(plain_user)).get(ME_URL).status_code == 200

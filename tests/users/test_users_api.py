"""The user directory (staff) and the own profile (``/me``): permissions, validation, changes."""

from __future__ import annotations

import datetime

import pytest
from rest_framework.test import APIClient

from users.models import User
from users.repository import db
from users.serializers import UserSerializer
from users.services import accounts

pytestmark = pytest.mark.django_db

USERS_URL = "/api/users/"
ME_URL = "/api/users/me/"

STAFF_ONLY = [
    ("get", USERS_URL),
    ("post", USERS_URL),
    ("get", "/api/users/{id}/"),
    ("patch", "/api/users/{id}/"),
    ("delete", "/api/users/{id}/"),
    ("post", "/api/users/sync/"),
]
SIGNED_IN = [("get", ME_URL), ("patch", ME_URL), ("get", "/api/users/stats/")]


def _call(client, method: str, url: str, user: User):
    return getattr(client, method)(url.format(id=user.pk), {}, format="json")


@pytest.mark.parametrize(("method", "url"), STAFF_ONLY + SIGNED_IN)
def test_anonymous_requests_are_a_401(api_client, plain_user, method, url):
    assert _call(api_client, method, url, plain_user).status_code == 401


@pytest.mark.parametrize(("method", "url"), STAFF_ONLY)
def test_staff_endpoints_are_a_403_for_other_users(user_client, plain_user, method, url):
    assert _call(user_client, method, url, plain_user).status_code == 403
    plain_user.refresh_from_db()
    assert plain_user.is_active


@pytest.mark.parametrize(("method", "url"), SIGNED_IN)
def test_signed_in_endpoints_serve_any_user(user_client, plain_user, method, url):
    assert _call(user_client, method, url, plain_user).status_code == 200


def test_staff_can_list_and_read_users(staff_client, plain_user):
    listing = staff_client.get(USERS_URL)
    detail = staff_client.get(f"{USERS_URL}{plain_user.pk}/")

    assert listing.status_code == 200
    assert {row["username"] for row in listing.json()["results"]} == {"staff", "plain"}
    assert detail.status_code == 200
    assert detail.json()["email"] == "plain@example.com"


def _utc(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def test_a_user_is_answered_field_by_field_the_same_in_the_list_and_alone(staff_client, make_user):
    """Every field, in order, with its value: timestamps in ISO 8601 UTC (microseconds kept), unset ones
    and a local user's external id null."""
    moment = datetime.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=datetime.UTC)
    local = make_user("ann", display_name="Ann Archer")
    mirror = make_user(
        "cat",
        source=User.Source.THIRD_PARTY,
        external_id="u-1",
        is_active=False,
        upstream_deleted=True,
        deactivated_at=moment,
        deactivated_by="staff",
        last_login=moment - datetime.timedelta(days=3),
        synced_at=moment,
    )
    expected = {
        local.pk: {
            "id": local.pk,
            "username": "ann",
            "email": "ann@example.com",
            "display_name": "Ann Archer",
            "source": "local",
            "external_id": None,
            "is_active": True,
            "is_staff": False,
            "upstream_deleted": False,
            "deactivated_at": None,
            "deactivated_by": "",
            "version": 1,
            "last_login": None,
            "synced_at": None,
            "created_at": _utc(local.created_at),
            "updated_at": _utc(local.updated_at),
        },
        mirror.pk: {
            "id": mirror.pk,
            "username": "cat",
            "email": "cat@example.com",
            "display_name": "",
            "source": "third_party",
            "external_id": "u-1",
            "is_active": False,
            "is_staff": False,
            "upstream_deleted": True,
            "deactivated_at": "2026-03-04T05:06:07.890123Z",
            "deactivated_by": "staff",
            "version": 1,
            "last_login": "2026-03-01T05:06:07.890123Z",
            "synced_at": "2026-03-04T05:06:07.890123Z",
            "created_at": _utc(mirror.created_at),
            "updated_at": _utc(mirror.updated_at),
        },
    }

    listed = {row["id"]: row for row in staff_client.get(USERS_URL).json()["results"]}
    for pk, representation in expected.items():
        alone = staff_client.get(f"{USERS_URL}{pk}/").json()
        assert alone == listed[pk] == representation
        assert list(alone) == list(listed[pk]) == UserSerializer.Meta.fields


def test_no_output_exposes_the_password(staff_client, plain_user):
    bodies = [
        staff_client.get(USERS_URL).json()["results"][0],
        staff_client.get(f"{USERS_URL}{plain_user.pk}/").json(),
        staff_client.get(ME_URL).json(),
    ]

    assert all("password" not in body for body in bodies)


@pytest.mark.parametrize("path", ["999999/", "abc/", "99999999999999999999999/"])
def test_unknown_ids_are_a_404(staff_client, path):
    assert staff_client.get(f"{USERS_URL}{path}").status_code == 404
    assert staff_client.patch(f"{USERS_URL}{path}", {}, format="json").status_code == 404
    assert staff_client.delete(f"{USERS_URL}{path}").status_code == 404


# --- create -------------------------------------------------------------------


def test_staff_creates_a_local_user_without_a_password(staff_client):
    response = staff_client.post(
        USERS_URL, {"username": "ann", "email": "ann@example.com", "display_name": "Ann"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert body["source"] == "local"
    assert body["is_staff"] is False
    user = User.objects.get(pk=body["id"])
    assert user.display_name == "Ann"
    assert not user.has_usable_password()


def test_a_user_created_with_a_password_can_sign_in(staff_client):
    response = staff_client.post(
        USERS_URL,
        {"username": "bob", "email": "bob@example.com", "password": "a-long-enough-secret-77"},
        format="json",
    )

    assert response.status_code == 201
    signed_in = APIClient().post(
        "/api/auth/token/", {"username": "bob", "password": "a-long-enough-secret-77"}, format="json"
    )
    assert signed_in.status_code == 200, signed_in.content


@pytest.mark.parametrize("email", ["plain@example.com", "PLAIN@Example.com"])
def test_a_taken_email_is_a_409_with_a_clear_message(staff_client, plain_user, email):
    response = staff_client.post(USERS_URL, {"username": "other", "email": email}, format="json")

    assert response.status_code == 409
    assert response.json() == {"email": ["A user with this email address already exists."]}
    assert not User.objects.filter(username="other").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "x", "email": "not-an-email"}, "email"),
        ({"username": "x"}, "email"),
        ({"email": "x@example.com"}, "username"),
        ({"username": "has space", "email": "x@example.com"}, "username"),
        ({"username": "x", "email": "x@example.com", "password": "123"}, "password"),
        ({"username": "x", "email": "x@example.com", "is_staff": "maybe"}, "is_staff"),
        ({"username": "x", "email": "x@example.com", "source": "third_party"}, "source"),
    ],
)
def test_bad_input_on_create_is_a_400_naming_the_field(staff_client, plain_user, body, field):
    response = staff_client.post(USERS_URL, body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not User.objects.filter(username="x").exists()


def test_a_taken_username_is_a_409_naming_it(staff_client, plain_user):
    response = staff_client.post(USERS_URL, {"username": "plain", "email": "x@example.com"}, format="json")

    assert response.status_code == 409
    assert response.json() == {"username": ["A user with this username already exists."]}
    assert not User.objects.filter(email="x@example.com").exists()


def test_a_body_that_is_not_an_object_is_a_400(staff_client):
    response = staff_client.post(USERS_URL, ["ann"], format="json")

    assert response.status_code == 400


# --- change and deactivate ----------------------------------------------------


def test_a_patch_changes_only_the_given_fields(api_client, plain_user, django_user_model):
    # Granting staff status takes a superuser (tests/security/test_privileges.py).
    api_client.force_authenticate(django_user_model.objects.create_superuser(username="root", email="r@x.io"))
    response = api_client.patch(
        f"{USERS_URL}{plain_user.pk}/", {"display_name": "Plain P.", "is_staff": True}, format="json"
    )

    assert response.status_code == 200
    plain_user.refresh_from_db()
    assert (plain_user.display_name, plain_user.is_staff, plain_user.email) == (
        "Plain P.",
        True,
        "plain@example.com",
    )


def test_staff_patch_to_a_taken_email_is_a_409(staff_client, plain_user):
    response = staff_client.patch(
        f"{USERS_URL}{plain_user.pk}/", {"email": "Staff@example.com"}, format="json"
    )

    assert response.status_code == 409
    assert "email" in response.json()
    plain_user.refresh_from_db()
    assert plain_user.email == "plain@example.com"


def test_delete_deactivates_and_keeps_the_row(staff_client, plain_user):
    response = staff_client.delete(f"{USERS_URL}{plain_user.pk}/")

    assert response.status_code == 204
    plain_user.refresh_from_db()
    assert plain_user.is_active is False
    body = staff_client.get(f"{USERS_URL}{plain_user.pk}/").json()
    assert (body["is_active"], body["deactivated_by"]) == (False, "staff")
    assert body["deactivated_at"] is not None


# --- optimistic concurrency -------------------------------------------------------


def test_every_save_bumps_the_version_and_the_current_one_is_accepted(staff_client, plain_user):
    url = f"{USERS_URL}{plain_user.pk}/"
    version = staff_client.get(url).json()["version"]

    first = staff_client.patch(url, {"version": version, "display_name": "One"}, format="json")
    second = staff_client.patch(url, {"version": version + 1, "display_name": "Two"}, format="json")

    assert (first.status_code, first.json()["version"]) == (200, version + 1)
    assert (second.status_code, second.json()["version"]) == (200, version + 2)


def test_a_change_based_on_an_old_version_is_a_409_and_writes_nothing(staff_client, plain_user):
    url = f"{USERS_URL}{plain_user.pk}/"
    version = staff_client.get(url).json()["version"]
    accounts.user_profile_update(user=User.objects.get(pk=plain_user.pk), display_name="Mine")

    response = staff_client.patch(url, {"version": version, "display_name": "Theirs"}, format="json")

    assert response.status_code == 409
    assert list(response.json()) == ["version"]
    assert f"now at version {version + 1}" in response.json()["version"][0]
    plain_user.refresh_from_db()
    assert (plain_user.display_name, plain_user.version) == ("Mine", version + 1)


def test_a_write_between_the_read_and_the_save_is_never_overwritten(plain_user):
    stale = User.objects.get(pk=plain_user.pk)
    User.objects.filter(pk=plain_user.pk).update(display_name="Sync's", version=stale.version + 1)
    stale.display_name = "Mine"

    assert db.user_save(stale, fields=["display_name"]) is False
    plain_user.refresh_from_db()
    assert plain_user.display_name == "Sync's"


# --- form bodies --------------------------------------------------------------------


def test_a_form_body_with_an_empty_email_is_a_400_not_ignored(user_client, plain_user):
    response = user_client.patch(ME_URL, {"email": "", "display_name": ""}, format="multipart")

    assert response.status_code == 400
    assert list(response.json()) == ["email"]


def test_a_form_body_leaves_the_booleans_it_does_not_name_alone(staff_client, plain_user):
    response = staff_client.patch(
        f"{USERS_URL}{plain_user.pk}/", {"display_name": "Formed"}, format="multipart"
    )

    assert response.status_code == 200
    plain_user.refresh_from_db()
    assert (plain_user.display_name, plain_user.is_active, plain_user.is_staff) == ("Formed", True, False)


def test_a_form_field_given_twice_is_a_400(user_client, plain_user):
    response = user_client.patch(
        ME_URL, "display_name=a&display_name=b", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 400
    assert response.json() == {"display_name": ["Give this field once."]}


# --- own profile ----------------------------------------------------------------


def test_me_returns_the_signed_in_user(user_client, plain_user):
    body = user_client.get(ME_URL).json()

    assert (body["id"], body["username"], body["is_staff"]) == (plain_user.pk, "plain", False)


def test_me_patch_changes_display_name_and_email(user_client, plain_user):
    response = user_client.patch(ME_URL, {"display_name": "P", "email": "new@example.com"}, format="json")

    assert response.status_code == 200
    assert response.json()["email"] == "new@example.com"
    plain_user.refresh_from_db()
    assert (plain_user.display_name, plain_user.email) == ("P", "new@example.com")
    assert (plain_user.is_staff, plain_user.is_superuser, plain_user.is_active) == (False, False, True)


def test_me_may_change_the_case_of_its_own_email(user_client, plain_user):
    response = user_client.patch(ME_URL, {"email": "Plain@example.com"}, format="json")

    assert response.status_code == 200
    assert response.json()["email"] == "Plain@example.com"


@pytest.mark.parametrize(
    "body",
    [{"is_staff": True}, {"is_superuser": True}, {"is_active": False}, {"source": "third_party"}],
)
def test_me_patch_cannot_change_rights_or_origin(user_client, plain_user, body):
    response = user_client.patch(ME_URL, {"display_name": "sneaky", **body}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == set(body)
    plain_user.refresh_from_db()
    assert (plain_user.is_staff, plain_user.is_superuser, plain_user.is_active) == (False, False, True)
    assert (plain_user.source, plain_user.display_name) == ("local", "")


def test_me_patch_to_a_taken_email_is_a_409(user_client, plain_user, staff_user):
    response = user_client.patch(ME_URL, {"email": "staff@example.com"}, format="json")

    assert response.status_code == 409
    assert response.json() == {"email": ["A user with this email address already exists."]}

"""Local decisions win over the sync: a mirror staff deactivated stays off, and a stale admin form or
API change is refused, against the demo upstream process and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from django import forms
from rest_framework.test import APIClient

from tests.upstream.test_sync import counts, mirror, sync
from users.admin import STALE_FORM
from users.models import User
from users.services.accounts import DELETED_UPSTREAM, SYNC_OWNED_MESSAGE

pytestmark = [pytest.mark.processes, pytest.mark.django_db]


@pytest.fixture
def staff(django_user_model) -> User:
    return django_user_model.objects.create_superuser(username="root", email="root@example.com")


@pytest.fixture
def api(staff) -> APIClient:
    client = APIClient()
    client.force_authenticate(staff)
    return client


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def change_url(user: User) -> str:
    return f"/admin/users/user/{user.pk}/change/"


def form_data(page: Any) -> dict[str, Any]:
    """The admin change form as the browser would post it back unchanged."""
    form = page.context["adminform"].form
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form[name].value()
        if isinstance(field, forms.BooleanField):
            if value:
                data[name] = "on"
        elif isinstance(value, list | tuple):
            data[name] = [str(item) for item in value]
        elif isinstance(value, datetime):
            data[name] = value.isoformat()
        else:
            data[name] = "" if value is None else str(value)
    return data


def test_a_mirror_deactivated_through_the_api_stays_off_while_the_sync_keeps_its_fields(
    upstream_url, touch, api, staff
):
    sync()
    user = mirror("u000003")

    assert api.delete(f"/api/users/{user.pk}/").status_code == 204
    touch(ids=["u000003"])

    assert sync() == counts(pages=1, updated=1)
    user = mirror("u000003")
    assert not user.is_active
    assert user.display_name == "User 000003 (rev 1)"
    assert (user.deactivated_by, user.upstream_deleted) == (staff.username, False)
    body = api.get(f"/api/users/{user.pk}/").json()
    assert (body["is_active"], body["deactivated_by"]) == (False, "root")
    assert body["deactivated_at"] is not None

    # Deleted and restored upstream meanwhile: still off.
    touch(ids=["u000003"], deleted=True)
    assert sync() == counts(pages=1, updated=1)
    assert mirror("u000003").upstream_deleted
    touch(ids=["u000003"], deleted=False)
    assert sync() == counts(pages=1, updated=1)
    user = mirror("u000003")
    assert (user.is_active, user.upstream_deleted, user.locally_deactivated) == (False, False, True)


def test_staff_lift_the_deactivation_and_the_sync_decides_again(upstream_url, touch, api):
    sync()
    user = mirror("u000004")
    api.delete(f"/api/users/{user.pk}/")

    response = api.patch(f"/api/users/{user.pk}/", {"is_active": True}, format="json")

    assert response.status_code == 200
    assert (response.json()["is_active"], response.json()["deactivated_at"]) == (True, None)
    touch(ids=["u000004"], deleted=True)
    assert sync() == counts(pages=1, deactivated=1)
    assert not mirror("u000004").is_active


def test_a_mirror_the_upstream_deleted_cannot_be_switched_on_here(upstream_url, touch, api):
    sync()
    touch(ids=["u000006"], deleted=True)
    sync()
    user = mirror("u000006")

    response = api.patch(f"/api/users/{user.pk}/", {"is_active": True}, format="json")

    assert response.status_code == 409
    assert response.json() == {"is_active": [DELETED_UPSTREAM]}
    assert not mirror("u000006").is_active


def test_the_fields_the_sync_owns_are_read_only_for_mirrors_in_the_api(upstream_url, api):
    sync()
    user = mirror("u000007")

    response = api.patch(
        f"/api/users/{user.pk}/", {"email": "mine@example.com", "display_name": "Mine"}, format="json"
    )

    assert response.status_code == 409
    assert response.json() == {"email": [SYNC_OWNED_MESSAGE], "display_name": [SYNC_OWNED_MESSAGE]}
    assert (mirror("u000007").email, mirror("u000007").display_name) == (user.email, user.display_name)
    # The values it already has are no change.
    same = api.patch(f"/api/users/{user.pk}/", {"display_name": user.display_name}, format="json")
    assert same.status_code == 200


def test_a_stale_api_change_is_refused_after_a_sync_wrote_the_user(upstream_url, touch, api):
    sync()
    user = mirror("u000008")
    read = api.get(f"/api/users/{user.pk}/").json()
    touch(ids=["u000008"])
    sync()

    response = api.patch(
        f"/api/users/{user.pk}/", {"version": read["version"], "is_active": False}, format="json"
    )

    assert response.status_code == 409
    current = mirror("u000008")
    assert current.version == read["version"] + 1
    assert set(response.json()) == {"version"}
    assert f"now at version {current.version}" in response.json()["version"][0]
    assert current.is_active


def test_an_admin_form_opened_before_a_tombstone_and_saved_after_it_is_refused(
    upstream_url, touch, admin_client
):
    """The issue's scenario: the form still says "active"; saving it must not reactivate the user."""
    sync()
    user = mirror("u000009")
    page = admin_client.get(change_url(user))
    assert page.status_code == 200
    stale = form_data(page)
    assert stale["is_active"] == "on"

    touch(ids=["u000009"], deleted=True)
    assert sync() == counts(pages=1, deactivated=1)
    response = admin_client.post(change_url(user), {**stale, "first_name": "Edited"})

    assert response.status_code == 200  # the form again, with the error
    assert STALE_FORM in response.content.decode()
    user = mirror("u000009")
    assert (user.is_active, user.first_name, user.upstream_deleted) == (False, "", True)

    # Opened again, the form shows the user as it is, and saves.
    fresh = form_data(admin_client.get(change_url(user)))
    assert "is_active" not in fresh
    assert admin_client.post(change_url(user), {**fresh, "first_name": "Edited"}).status_code == 302
    user = mirror("u000009")
    assert (user.is_active, user.first_name) == (False, "Edited")


def test_unticking_active_in_the_admin_is_a_local_decision_the_sync_keeps(upstream_url, touch, admin_client):
    sync()
    user = mirror("u000010")
    data = form_data(admin_client.get(change_url(user)))
    del data["is_active"]

    assert admin_client.post(change_url(user), data).status_code == 302
    touch(ids=["u000010"])
    sync()

    user = mirror("u000010")
    assert (user.is_active, user.deactivated_by, user.display_name) == (False, "root", "User 000010 (rev 1)")
    page = admin_client.get(change_url(user))
    assert "deactivated_by" in page.context["adminform"].readonly_fields
    assert "root" in page.content.decode()

    # Ticking it again lifts the decision.
    data = form_data(page)
    data["is_active"] = "on"
    assert admin_client.post(change_url(user), data).status_code == 302
    user = mirror("u000010")
    assert (user.is_active, user.deactivated_at, user.deactivated_by) == (True, None, "")


def test_ticking_active_for_a_mirror_the_upstream_deleted_is_a_form_error(upstream_url, touch, admin_client):
    sync()
    touch(ids=["u000012"], deleted=True)
    sync()
    user = mirror("u000012")
    data = {**form_data(admin_client.get(change_url(user))), "is_active": "on"}

    response = admin_client.post(change_url(user), data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["is_active"] == [DELETED_UPSTREAM]
    assert not mirror("u000012").is_active


def test_the_admin_shows_a_mirrors_synced_fields_read_only(upstream_url, admin_client):
    sync()
    page = admin_client.get(change_url(mirror("u000013")))

    form_fields = set(page.context["adminform"].form.fields)
    assert not {"email", "display_name", "source", "upstream_deleted", "deactivated_at"} & form_fields
    assert {"is_active", "version", "first_name"} <= form_fields
    assert "user000013@upstream.example" in page.content.decode()

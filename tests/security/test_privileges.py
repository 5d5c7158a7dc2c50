"""Only a superuser grants or takes staff or superuser status, or acts on a superuser: API and admin.

Staff hold Django's model permissions (the matrix in test_permission_matrix.py);
these tests hold a staff account that has every user permission to the rule
above it.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.test import APIClient

from users.models import User

pytestmark = pytest.mark.django_db

PASSWORD = "privileges-pass-123"
USER_PERMISSIONS = ["view_user", "add_user", "change_user", "delete_user"]


@pytest.fixture
def people(django_user_model) -> dict[str, Any]:
    manager = django_user_model.objects.create_user(
        username="manager", email="manager@example.com", password=PASSWORD, is_staff=True
    )
    manager.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="users", codename__in=USER_PERMISSIONS)
    )
    root = django_user_model.objects.create_superuser(
        username="root", email="root@example.com", password=PASSWORD
    )
    plain = django_user_model.objects.create_user(username="plain", email="plain@example.com")
    return {"manager": manager, "root": root, "plain": plain}


def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_staff_with_every_user_permission_cannot_touch_a_superuser(people):
    client, root = api(people["manager"]), people["root"]

    for body in ({"is_staff": False}, {"display_name": "Demoted"}, {"email": "mine@example.com"}):
        response = client.patch(f"/api/users/{root.pk}/", body, format="json")
        assert response.status_code == 403, body
        assert "superuser" in response.json()["detail"]
    assert client.delete(f"/api/users/{root.pk}/").status_code == 403

    root.refresh_from_db()
    assert (root.is_active, root.is_staff, root.email, root.display_name) == (
        True,
        True,
        "root@example.com",
        "",
    )


def test_staff_cannot_grant_or_take_staff_status_but_may_change_other_fields(people):
    client, plain = api(people["manager"]), people["plain"]

    assert client.patch(f"/api/users/{plain.pk}/", {"is_staff": True}, format="json").status_code == 403
    created = client.post("/api/users/", {"username": "boss", "email": "boss@example.com", "is_staff": True})
    assert created.status_code == 403
    assert not User.objects.filter(username="boss").exists()

    # Sending the status it already has changes nothing and is allowed, as are other fields.
    same = client.patch(f"/api/users/{plain.pk}/", {"is_staff": False, "display_name": "P"}, format="json")
    assert same.status_code == 200, same.content
    assert client.post("/api/users/", {"username": "clerk", "email": "clerk@example.com"}).status_code == 201
    plain.refresh_from_db()
    assert (plain.is_staff, plain.display_name) == (False, "P")


def test_a_superuser_may_do_all_of_it(people):
    client, plain = api(people["root"]), people["plain"]

    assert client.patch(f"/api/users/{plain.pk}/", {"is_staff": True}, format="json").status_code == 200
    assert User.objects.get(pk=plain.pk).is_staff is True
    other_root = User.objects.create_superuser(username="root2", email="root2@example.com", password=PASSWORD)
    assert client.delete(f"/api/users/{other_root.pk}/").status_code == 204


def test_the_admin_keeps_privileges_and_superusers_to_superusers(people):
    client = Client()
    client.force_login(people["manager"])
    plain, root = people["plain"], people["root"]

    page = client.get(f"/admin/users/user/{plain.pk}/change/").content.decode()
    assert 'name="email"' in page
    for field in ("is_staff", "is_superuser", "groups", "user_permissions"):
        assert f'name="{field}"' not in page, f"{field} is editable by a non-superuser"

    # A superuser's page is read-only for them, and they cannot delete one.
    assert client.post(f"/admin/users/user/{root.pk}/change/", {"email": "x@example.com"}).status_code == 403
    assert client.post(f"/admin/users/user/{root.pk}/delete/", {"post": "yes"}).status_code == 403
    root.refresh_from_db()
    assert root.email == "root@example.com" and root.is_active

    superuser = Client()
    superuser.force_login(root)
    page = superuser.get(f"/admin/users/user/{plain.pk}/change/").content.decode()
    assert 'name="is_superuser"' in page and 'name="user_permissions"' in page

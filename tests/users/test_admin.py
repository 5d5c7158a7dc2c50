"""The user admin: its pages render with the custom fields."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    superuser = get_user_model().objects.create_superuser(
        username="root", email="root@example.com", password="root-pass-123"
    )
    client.force_login(superuser)
    return client


def test_changelist_lists_filters_and_searches(admin_client, make_user):
    make_user("mirror", source="third_party", external_id="ext-42", display_name="Mirrored")

    page = admin_client.get("/admin/users/user/?q=ext-42&source__exact=third_party")

    assert page.status_code == 200
    assert page.context["cl"].result_count == 1
    assert b"Mirrored" in page.content


def test_change_page_shows_the_sync_fields_read_only(admin_client, make_user):
    user = make_user("mirror", source="third_party", external_id="ext-42")

    page = admin_client.get(f"/admin/users/user/{user.pk}/change/")

    assert page.status_code == 200
    form_fields = set(page.context["adminform"].form.fields)
    assert {"display_name", "source", "email"} <= form_fields
    assert not {"external_id", "synced_at", "created_at", "updated_at"} & form_fields
    assert b"ext-42" in page.content


def test_add_page_creates_a_user_with_an_email(admin_client):
    response = admin_client.post(
        "/admin/users/user/add/",
        {
            "username": "newbie",
            "email": "newbie@example.com",
            "password1": "a-long-enough-secret-77",
            "password2": "a-long-enough-secret-77",
            "usable_password": "true",
        },
    )

    assert response.status_code == 302
    user = get_user_model().objects.get(username="newbie")
    assert user.email == "newbie@example.com"
    assert user.check_password("a-long-enough-secret-77")

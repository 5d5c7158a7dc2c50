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
    assert {"is_active", "first_name", "version"} <= form_fields
    assert not {"display_name", "source", "email", "external_id", "synced_at"} & form_fields
    assert "upstream_deleted" not in form_fields
    assert not {"deactivated_at", "deactivated_by", "created_at", "updated_at"} & form_fields
    assert b"ext-42" in page.content


def test_a_local_users_profile_stays_editable(admin_client, make_user):
    user = make_user("local")

    page = admin_client.get(f"/admin/users/user/{user.pk}/change/")

    assert {"display_name", "source", "email"} <= set(page.context["adminform"].form.fields)


def test_the_actions_deactivate_and_reactivate_and_keep_who_did_it(admin_client, make_user):
    ann, bob = make_user("ann"), make_user("bob", source="third_party", external_id="b")
    gone = make_user("gone", source="third_party", external_id="g", is_active=False, upstream_deleted=True)
    ids = [str(user.pk) for user in (ann, bob, gone)]

    off = admin_client.post(
        "/admin/users/user/", {"action": "deactivate_users", "_selected_action": ids}, follow=True
    )

    assert "3 user(s) deactivated." in off.content.decode()
    users = get_user_model().objects.filter(pk__in=ids)
    assert {(user.is_active, user.deactivated_by) for user in users} == {(False, "root")}
    assert {user.version for user in users} == {2}

    on = admin_client.post(
        "/admin/users/user/", {"action": "reactivate_users", "_selected_action": ids}, follow=True
    )

    assert "2 user(s) reactivated." in on.content.decode()
    # The admin capitalizes a message's first letter.
    assert "Gone@example.com: The third-party user service deleted" in on.content.decode()
    users = {user.username: user for user in get_user_model().objects.filter(pk__in=ids)}
    assert (users["ann"].is_active, users["bob"].is_active, users["gone"].is_active) == (True, True, False)
    assert (users["ann"].deactivated_at, users["gone"].deactivated_by) == (None, "root")


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

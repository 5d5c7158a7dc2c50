"""``manage.py ensure_dev_admin``: only on a DEBUG + SQLite setup, and idempotent there."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import RequestFactory

from users.models import User

pytestmark = pytest.mark.django_db


def test_refuses_when_debug_is_off(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DJANGO_DEBUG is off"):
        call_command("ensure_dev_admin")
    assert not User.objects.filter(username="admin").exists()


@pytest.mark.skipif(connection.vendor == "sqlite", reason="shows the refusal on a non-SQLite database")
def test_refuses_on_a_server_database(settings):
    settings.DEBUG = True

    with pytest.raises(CommandError, match="not the local SQLite file"):
        call_command("ensure_dev_admin")
    assert not User.objects.filter(username="admin").exists()


@pytest.mark.sqlite
@pytest.mark.skipif(connection.vendor != "sqlite", reason="runs in the SQLite pass (make test-sqlite)")
def test_creates_the_admin_once_on_sqlite(settings, capsys):
    settings.DEBUG = True

    call_command("ensure_dev_admin")
    call_command("ensure_dev_admin")

    assert User.objects.filter(username="admin").count() == 1
    # The request goes with it: the sign-in limiter (django-axes) counts per client address.
    admin = authenticate(RequestFactory().post("/admin/login/"), username="admin", password="admin")
    assert admin is not None
    assert (admin.is_superuser, admin.is_staff, admin.email) == (True, True, "admin@example.com")
    output = capsys.readouterr().out
    assert "Created superuser" in output
    assert "already exists" in output

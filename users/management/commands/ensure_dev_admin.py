"""``manage.py ensure_dev_admin``: the ``admin``/``admin`` superuser of a local development database.

``make run`` calls it so a fresh clone can sign in at once. The well-known
password is only acceptable on a developer's machine, hence the refusal
unless DEBUG is on and the database is SQLite.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from users.services import accounts

USERNAME = "admin"
PASSWORD = "admin"
EMAIL = "admin@example.com"


class Command(BaseCommand):
    help = "Create the local superuser admin/admin (DEBUG and SQLite only; idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("ensure_dev_admin refused: DJANGO_DEBUG is off (development only)")
        if connection.vendor != "sqlite":
            raise CommandError(
                f"ensure_dev_admin refused: the database is {connection.vendor}, not the local SQLite file"
            )
        _, created = accounts.user_ensure_superuser(username=USERNAME, email=EMAIL, password=PASSWORD)
        if created:
            self.stdout.write(f"Created superuser {USERNAME!r} with password {PASSWORD!r}.")
        else:
            self.stdout.write(f"Superuser {USERNAME!r} already exists; left unchanged.")

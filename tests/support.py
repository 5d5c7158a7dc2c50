"""Helpers shared by the whole suite: child-process database URLs, log lines, staff permissions.

Ports, polling and child processes come from :mod:`harness`, shared with the benchmarks and scripts.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from django.db import connection

from harness.ports import free_port as free_port
from harness.processes import BIN_DIR as BIN_DIR, PROJECT_DIR as PROJECT_DIR
from harness.waiting import Timeout as Timeout, wait_until as wait_until


def child_database_url() -> str:
    """A ``DATABASE_URL`` that points a child process at this test run's database."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    return f"postgres://{auth}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


def json_log_lines(output: str) -> list[dict[str, Any]]:
    """The lines of a child's output written in the JSON log format (gunicorn's own lines are not)."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


#: The model permissions the staff API asks for, all of them: what an operator's account holds.
STAFF_API_PERMISSIONS = [
    "users.view_user",
    "users.add_user",
    "users.change_user",
    "users.delete_user",
    "stayy.view_job",
    "stayy.change_job",
    "stayy.view_jobrun",
]


def api_token(user: Any, *, using: str = "default") -> str:
    """A new API token of ``user`` (knox: stored hashed, expiring as configured); the token string."""
    from knox.models import AuthToken

    _, token = AuthToken.objects.db_manager(using).create(user=user)
    return str(token)


def grant_staff_api(user: Any, *, using: str = "default") -> Any:
    """Give ``user`` every permission of the staff API (it must be staff already); returns it."""
    from django.contrib.auth.models import Permission

    for name in STAFF_API_PERMISSIONS:
        app_label, codename = name.split(".")
        permission = Permission.objects.using(using).get(content_type__app_label=app_label, codename=codename)
        user.user_permissions.add(permission)
    return user

"""Who may call what: every endpoint by every kind of caller, and the status code each gets.

Read the matrix as the access policy of the service. API callers present
their own API token (and a signed-in session, which the admin uses); the
anonymous caller presents neither. Besides the code, every answer to a
caller who is not staff is checked for what it must never contain: another
user's data, a job run, a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import override_settings
from django.urls import get_resolver, reverse
from rest_framework.test import APIClient

from stayy.models import JobRun
from tests.support import api_token
from users.models import User

pytestmark = pytest.mark.django_db

JOB = "stayy.purge_job_runs"
METRICS_TOKEN = "matrix-metrics-token"
PASSWORD = "matrix-pass-123"
OTHER_EMAIL = "someone.else@example.com"
TRACEBACK_MARKER = "matrix-traceback-marker"

CALLERS = ["anonymous", "user", "inactive", "staff", "staff_view", "staff_change", "superuser"]
#: is_staff: the admin lets them in (and shows what their permissions allow).
STAFF = {"staff", "staff_view", "staff_change", "superuser"}
#: Hold the view permissions: they see other users and job runs.
SEES = {"staff_view", "staff_change", "superuser"}
#: The model permissions of the two staff callers that hold some.
GRANTS = {
    "staff_view": ["users.view_user", "stayy.view_job", "stayy.view_jobrun"],
    "staff_change": [
        "users.view_user",
        "users.change_user",
        "stayy.view_job",
        "stayy.change_job",
        "stayy.view_jobrun",
    ],
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None


ENDPOINTS: dict[str, Endpoint] = {
    "users list": Endpoint("get", "/api/users/"),
    "users create": Endpoint("post", "/api/users/", {"username": "newbie", "email": "newbie@example.com"}),
    "users detail": Endpoint("get", "/api/users/{other}/"),
    "users update": Endpoint("patch", "/api/users/{other}/", {"display_name": "Renamed"}),
    "users delete": Endpoint("delete", "/api/users/{other}/"),
    "me": Endpoint("get", "/api/users/me/"),
    "me update": Endpoint("patch", "/api/users/me/", {"display_name": "Me Myself"}),
    "stats": Endpoint("get", "/api/users/stats/"),
    "sync": Endpoint("post", "/api/users/sync/"),
    "token obtain": Endpoint("post", "/api/auth/token/", {"username": "{username}", "password": PASSWORD}),
    "token revoke": Endpoint("delete", "/api/auth/token/"),
    "jobs list": Endpoint("get", "/api/jobs/"),
    "job detail": Endpoint("get", f"/api/jobs/{JOB}/"),
    "job edit": Endpoint("patch", f"/api/jobs/{JOB}/", {"overlap": "queue"}),
    "job reset": Endpoint("post", f"/api/jobs/{JOB}/reset/"),
    "job runs": Endpoint("get", f"/api/jobs/{JOB}/runs/"),
    "job run detail": Endpoint("get", f"/api/jobs/{JOB}/runs/{{run}}/"),
    "job run now": Endpoint("post", f"/api/jobs/{JOB}/run/"),
    "job pause": Endpoint("post", f"/api/jobs/{JOB}/pause/"),
    "job resume": Endpoint("post", f"/api/jobs/{JOB}/resume/"),
    "schema": Endpoint("get", "/api/schema/"),
    "docs": Endpoint("get", "/api/docs/"),
    "admin index": Endpoint("get", "/admin/"),
    "admin runs": Endpoint("get", "/admin/stayy/jobrun/"),
    "jobs dashboard": Endpoint("get", "{dashboard}"),
    "metrics, no token": Endpoint("get", "/metrics"),
    "metrics, wrong token": Endpoint("get", "/metrics", headers={"X-Metrics": "Bearer wrong"}),
    "metrics, token": Endpoint("get", "/metrics", headers={"X-Metrics": f"Bearer {METRICS_TOKEN}"}),
    "healthz": Endpoint("get", "/healthz"),
    "readyz": Endpoint("get", "/readyz"),
}

# 401: no or unusable credentials (an inactive user's token is refused at once);
# 403: signed in but not allowed; the admin redirects to its login (302).
# The API asks staff for Django's model permissions, as the admin does: "staff"
# holds none, "staff_view" the view permissions, "staff_change" view and change
# (not add or delete). Run now, pause, resume, edits and the sync need stayy.change_job.
# Docs are public (API_DOCS_PUBLIC on, the default); /metrics is guarded by its own token only.
# fmt: off
MATRIX: dict[str, tuple[int, int, int, int, int, int, int]] = {
    #                       anonymous  user  inactive  staff  staff_view  staff_change  superuser
    "users list":           (401,      403,  401,      403,   200,        200,          200),
    "users create":         (401,      403,  401,      403,   403,        403,          201),
    "users detail":         (401,      403,  401,      403,   200,        200,          200),
    "users update":         (401,      403,  401,      403,   403,        200,          200),
    "users delete":         (401,      403,  401,      403,   403,        403,          204),
    "me":                   (401,      200,  401,      200,   200,        200,          200),
    "me update":            (401,      200,  401,      200,   200,        200,          200),
    "stats":                (401,      200,  401,      200,   200,        200,          200),
    "sync":                 (401,      403,  401,      403,   403,        202,          202),
    "token obtain":         (400,      200,  400,      200,   200,        200,          200),
    "token revoke":         (401,      204,  401,      204,   204,        204,          204),
    "jobs list":            (401,      403,  401,      403,   200,        200,          200),
    "job detail":           (401,      403,  401,      403,   200,        200,          200),
    "job edit":             (401,      403,  401,      403,   403,        200,          200),
    "job reset":            (401,      403,  401,      403,   403,        200,          200),
    "job runs":             (401,      403,  401,      403,   200,        200,          200),
    "job run detail":       (401,      403,  401,      403,   200,        200,          200),
    "job run now":          (401,      403,  401,      403,   403,        202,          202),
    "job pause":            (401,      403,  401,      403,   403,        200,          200),
    "job resume":           (401,      403,  401,      403,   403,        200,          200),
    "schema":               (200,      200,  401,      200,   200,        200,          200),
    "docs":                 (200,      200,  401,      200,   200,        200,          200),
    "admin index":          (302,      302,  302,      200,   200,        200,          200),
    "admin runs":           (302,      302,  302,      403,   200,        200,          200),
    "jobs dashboard":       (302,      302,  302,      403,   200,        200,          200),
    "metrics, no token":    (401,      401,  401,      401,   401,        401,          401),
    "metrics, wrong token": (401,      401,  401,      401,   401,        401,          401),
    "metrics, token":       (200,      200,  200,      200,   200,        200,          200),
    "healthz":              (200,      200,  200,      200,   200,        200,          200),
    "readyz":               (200,      200,  200,      200,   200,        200,          200),
}
# fmt: on


def cases() -> list[Any]:
    return [
        pytest.param(endpoint, caller, codes[index], id=f"{endpoint}-{caller}")
        for endpoint, codes in MATRIX.items()
        for index, caller in enumerate(CALLERS)
    ]


def test_the_matrix_covers_every_endpoint_and_every_caller():
    assert set(MATRIX) == set(ENDPOINTS)
    assert all(len(codes) == len(CALLERS) for codes in MATRIX.values())


def test_every_routed_api_path_is_in_the_matrix():
    """A new endpoint must get a row here: every ``/api/`` route resolves to a matrix entry."""

    def walk(patterns: Any, prefix: str = "") -> list[str]:
        found: list[str] = []
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if hasattr(pattern, "url_patterns"):
                found.extend(walk(pattern.url_patterns, route))
            else:
                found.append(route)
        return found

    api_routes = {route for route in walk(get_resolver().url_patterns) if route.startswith("api/")}
    # Format-suffix and API-root routes of the router are the same views under other names.
    api_routes = {r for r in api_routes if "format" not in r and r not in ("api/", "api/^$")}
    matrix_paths = {ENDPOINTS[name].path for name in MATRIX}

    def covered(route: str) -> bool:
        regex = re.sub(r"(^|/)\^", r"\1", route).replace("$", "")  # anchors of included patterns
        regex = re.sub(r"<int:\w+>", r"\\d+", regex)
        regex = re.sub(r"<str:\w+>", r"[^/]+", regex)
        return any(
            re.fullmatch(regex, path.lstrip("/").replace("{other}", "1").replace("{run}", "1"))
            for path in matrix_paths
        )

    missing = sorted(route for route in api_routes if not covered(route))
    assert not missing, f"routes without a row in the permission matrix: {missing}"


@pytest.fixture
def world(django_user_model) -> dict[str, Any]:
    """The callers, another user to look at, and a failed run with a traceback."""
    users = {
        "user": django_user_model.objects.create_user(
            username="user", email="user@example.com", password=PASSWORD
        ),
        "inactive": django_user_model.objects.create_user(
            username="inactive", email="inactive@example.com", password=PASSWORD
        ),
        **{
            caller: django_user_model.objects.create_user(
                username=caller, email=f"{caller}@example.com", password=PASSWORD, is_staff=True
            )
            for caller in ("staff", "staff_view", "staff_change")
        },
        "superuser": django_user_model.objects.create_superuser(
            username="root", email="root@example.com", password=PASSWORD
        ),
    }
    for caller, names in GRANTS.items():
        users[caller].user_permissions.add(*(permission(name) for name in names))
    tokens = {caller: api_token(user) for caller, user in users.items()}
    # Deactivated after its token was issued: the token must stop working at once.
    users["inactive"].is_active = False
    users["inactive"].save()
    other = django_user_model.objects.create_user(username="other", email=OTHER_EMAIL)
    run = JobRun.objects.create(
        job_name=JOB,
        scheduled_for="2025-01-01T00:00:00Z",
        status=JobRun.Status.FAILED,
        trigger=JobRun.Trigger.SCHEDULE,
        error="boom",
        traceback=f"Traceback (most recent call last):\n  {TRACEBACK_MARKER}\nValueError: boom",
    )
    return {"users": users, "tokens": tokens, "other": other, "run": run}


def permission(name: str) -> Permission:
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def client_for(caller: str, world: dict[str, Any]) -> APIClient:
    client = APIClient()
    if caller != "anonymous":
        client.credentials(HTTP_AUTHORIZATION=f"Token {world['tokens'][caller]}")
        client.force_login(world["users"][caller])
    return client


def call(client: APIClient, endpoint: Endpoint, caller: str, world: dict[str, Any]) -> Any:
    path = endpoint.path.format(
        other=world["other"].pk, run=world["run"].pk, dashboard=reverse("admin:stayy_job_dashboard")
    )
    body = None
    if endpoint.body is not None:
        username = world["users"][caller].username if caller in world["users"] else "nobody"
        body = {key: str(value).format(username=username) for key, value in endpoint.body.items()}
    extra: dict[str, str] = {}
    if endpoint.headers and "X-Metrics" in endpoint.headers:
        # /metrics takes a Bearer token of its own in Authorization, instead of the API token.
        client.credentials()
        extra["HTTP_AUTHORIZATION"] = endpoint.headers["X-Metrics"]
    return getattr(client, endpoint.method)(path, body, format="json" if body is not None else None, **extra)


@override_settings(METRICS_TOKEN=METRICS_TOKEN)
@pytest.mark.parametrize(("endpoint", "caller", "expected"), cases())
def test_permission_matrix(world, endpoint, caller, expected):
    response = call(client_for(caller, world), ENDPOINTS[endpoint], caller, world)

    assert response.status_code == expected, (endpoint, caller, response.content[:500])
    body = response.content.decode(errors="replace")
    assert "Traceback" not in body or (caller in SEES and endpoint == "job run detail")
    if caller not in SEES:
        assert OTHER_EMAIL not in body, f"{caller} saw another user's data at {endpoint}"
        assert TRACEBACK_MARKER not in body, f"{caller} saw a job run's traceback at {endpoint}"
        assert '"job_name"' not in body, f"{caller} saw job runs at {endpoint}"


def test_staff_do_see_the_users_and_the_traceback_the_matrix_hides(world):
    """The markers the matrix looks for are really there for staff, so their absence means something."""
    staff = client_for("staff_view", world)
    assert OTHER_EMAIL in staff.get("/api/users/").content.decode()
    run = world["run"]
    assert TRACEBACK_MARKER in staff.get(f"/api/jobs/{JOB}/runs/{run.pk}/").json()["traceback"]


def test_the_run_list_never_carries_tracebacks(world):
    response = client_for("staff_view", world).get(f"/api/jobs/{JOB}/runs/")
    assert response.status_code == 200
    assert TRACEBACK_MARKER not in response.content.decode()
    assert all("traceback" not in run for run in response.json()["results"])


@override_settings(METRICS_TOKEN="")
@pytest.mark.parametrize("caller", CALLERS)
def test_metrics_is_off_without_a_token_configured(world, caller):
    client = client_for(caller, world)
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


@pytest.mark.parametrize("caller", [c for c in CALLERS if c not in STAFF])
@pytest.mark.parametrize("path", ["/admin/", "/admin/stayy/job/", "/admin/stayy/jobrun/"])
def test_the_admin_sends_non_staff_to_its_login(world, caller, path):
    response = client_for(caller, world).get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_user_cannot_reach_another_user_through_any_id(world):
    """Non-staff get 403 for every user id, existing or not: no way to probe which ids exist."""
    client = client_for("user", world)
    own = world["users"]["user"].pk
    for pk in (world["other"].pk, own, 999999):
        assert client.get(f"/api/users/{pk}/").status_code == 403
        assert client.patch(f"/api/users/{pk}/", {"is_staff": True}, format="json").status_code == 403
    assert User.objects.get(pk=own).is_staff is False


def test_a_user_cannot_make_themselves_staff_through_their_profile(world):
    client = client_for("user", world)
    response = client.patch("/api/users/me/", {"is_staff": True, "is_superuser": True}, format="json")
    assert response.status_code == 400
    user = User.objects.get(pk=world["users"]["user"].pk)
    assert (user.is_staff, user.is_superuser) == (False, False)

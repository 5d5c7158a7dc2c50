"""The API against its own OpenAPI schema, with generated requests (schemathesis over real HTTP).

Every operation of ``/api/schema/`` is called with valid and invalid data,
once with a staff member's token and once with a normal user's token, against
``live_server`` (a real HTTP server thread on the test database). The checks
are schemathesis' defaults: no 5xx, and every status code, content type,
header and body conforms to the schema. Examples are bounded and derandomized
so the run is the same every time and fits the suite.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.conf import settings
from django.test import Client, override_settings
from hypothesis import HealthCheck, settings as hypothesis_settings
from schemathesis import checks

from stayy.models import JobRun
from tests.support import api_token
from users.models import User

pytestmark = [pytest.mark.django_db(transaction=True)]

EXAMPLES = hypothesis_settings(
    max_examples=8,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(autouse=True)
def private_cache() -> Iterator[None]:
    """Sign-in failures the fuzzer causes are counted under a prefix nobody else uses."""
    caches = {name: dict(config) for name, config in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"test-schema-{uuid.uuid4().hex}"
    with override_settings(CACHES=caches):
        yield


def load_schema() -> Any:
    """``/api/schema/`` as the app serves it (read through Django once, when the module is collected)."""
    response = Client().get(
        "/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json", HTTP_HOST="localhost"
    )
    assert response.status_code == 200, response.content[:500]
    return schemathesis.openapi.from_dict(json.loads(response.content))


schema = load_schema()


def caller(username: str, *, staff: bool) -> dict[str, str]:
    """The caller's token, restoring the caller first: a generated request may have deactivated,
    demoted or signed out the very user it ran as."""
    user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
    if (user.is_active, user.is_staff) != (True, staff):
        User.objects.filter(pk=user.pk).update(is_active=True, is_staff=staff)
        user.refresh_from_db()
    return {"Authorization": f"Token {api_token(user)}"}


@pytest.fixture
def some_data(db) -> None:
    """Something for the list and detail operations to find."""
    User.objects.get_or_create(username="someone", defaults={"email": "someone@example.com"})
    JobRun.objects.get_or_create(
        job_name="stayy.purge_job_runs",
        scheduled_for="2025-01-01T00:00:00Z",
        defaults={"status": JobRun.Status.FAILED, "traceback": "Traceback ...", "error": "boom"},
    )


# No 5xx, and every answer as the schema says: status code, content type, headers, body.
# (Not "positive_data_acceptance": a schema-valid request can still break a rule the schema
# cannot state, such as a taken email address or a wrong password; the API answers 400.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@schema.parametrize()
@EXAMPLES
def test_the_api_conforms_to_its_schema_for_staff(case, live_server, some_data):
    case.call_and_validate(base_url=live_server.url, headers=caller("fuzz-staff", staff=True), checks=CHECKS)


@schema.parametrize()
@EXAMPLES
def test_the_api_conforms_to_its_schema_for_a_normal_user(case, live_server, some_data):
    case.call_and_validate(base_url=live_server.url, headers=caller("fuzz-user", staff=False), checks=CHECKS)

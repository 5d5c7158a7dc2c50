"""The API against its own OpenAPI schema, with every check of schemathesis (over real HTTP).

Every operation of ``/api/schema/`` is called with valid and invalid data,
once with a superuser's token and once with a normal user's token, against
``live_server`` (a real HTTP server thread on the test database). The checks
are all of schemathesis' checks, what ``schemathesis run --checks all`` runs:
no 5xx; every status code, content type, header and body as the schema says;
valid requests accepted (or refused only for a reason of state, such as a
taken email: 409) and invalid ones refused; the same settings as that command
(``schemathesis.toml``). Examples are bounded and derandomized so the run is
the same every time and fits the suite.
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
from schemathesis.config import SchemathesisConfig

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
    config = SchemathesisConfig.from_path(str(settings.BASE_DIR / "schemathesis.toml"))
    return schemathesis.openapi.from_dict(json.loads(response.content), config=config)


schema = load_schema()


def caller(username: str, *, staff: bool) -> dict[str, str]:
    """The caller's token, restoring the caller first: a generated request may have deactivated,
    demoted or signed out the very user it ran as. The staff caller is a superuser, who may call
    every operation (a staff member without model permissions would only ever get a 403)."""
    user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
    if (user.is_active, user.is_staff, user.is_superuser) != (True, staff, staff):
        User.objects.filter(pk=user.pk).update(
            is_active=True, is_staff=staff, is_superuser=staff, deactivated_at=None
        )
        user.refresh_from_db()
    return {"Authorization": f"Token {api_token(user)}"}


@pytest.fixture
def some_data(db) -> None:
    """Something for the list and detail operations to find: a local user, mirrors (one deactivated
    here, one deleted upstream), a failed run."""
    User.objects.get_or_create(username="someone", defaults={"email": "someone@example.com"})
    mirrors = [("u1", {}), ("u2", {"is_active": False, "deactivated_at": "2025-01-01T00:00:00Z"})]
    mirrors.append(("u3", {"is_active": False, "upstream_deleted": True}))
    for external_id, fields in mirrors:
        User.objects.get_or_create(
            username=f"ext-{external_id}",
            defaults={"email": f"{external_id}@upstream.example", "source": "third_party", **fields},
            external_id=external_id,
        )
    JobRun.objects.get_or_create(
        job_name="stayy.purge_job_runs",
        scheduled_for="2025-01-01T00:00:00Z",
        defaults={"status": JobRun.Status.FAILED, "traceback": "Traceback ...", "error": "boom"},
    )


checks.load_all_checks()
#: Every check, as ``--checks all`` (the checks that follow a resource across requests need the
#: stateful phase of ``schemathesis run`` and pass here without effect).
CHECKS = checks.CHECKS.get_all()


@schema.parametrize()
@EXAMPLES
def test_the_api_conforms_to_its_schema_for_staff(case, live_server, some_data):
    case.call_and_validate(base_url=live_server.url, headers=caller("fuzz-staff", staff=True), checks=CHECKS)


@schema.parametrize()
@EXAMPLES
def test_the_api_conforms_to_its_schema_for_a_normal_user(case, live_server, some_data):
    case.call_and_validate(base_url=live_server.url, headers=caller("fuzz-user", staff=False), checks=CHECKS)

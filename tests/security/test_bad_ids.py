"""Ids and names in API paths that no row could have are a JSON 404, never a 500 or an HTML page."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

JOB = "stayy.purge_job_runs"
BAD_IDS = ["0", "99999999999999999999", str(2**63), "-1", "abc", "null,null", "1e3", "%C2%84", "%20"]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("get", "/api/users/{id}/"),
        ("patch", "/api/users/{id}/"),
        ("delete", "/api/users/{id}/"),
        ("get", f"/api/jobs/{JOB}/runs/{{id}}/"),
        ("get", "/api/jobs/{id}/"),
        ("get", "/api/jobs/{id}/runs/"),
        ("post", "/api/jobs/{id}/run/"),
    ],
)
def test_ids_no_row_can_have_are_a_json_404(staff_client, method, template, bad):
    response = getattr(staff_client, method)(template.format(id=bad), {}, format="json")
    assert response.status_code == 404, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert "detail" in response.json()

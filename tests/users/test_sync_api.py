"""``POST /api/users/sync/``: queues a run of the sync job, never runs it in the request."""

from __future__ import annotations

import pytest

from stayy.models import JobRun
from users import views

pytestmark = pytest.mark.django_db

SYNC_URL = "/api/users/sync/"


def test_sync_queues_a_manual_run_and_answers_202(staff_client):
    response = staff_client.post(SYNC_URL)

    assert response.status_code == 202
    run = JobRun.objects.get()
    assert (run.job_name, run.status, run.trigger, run.requested_by) == (
        "users.sync_third_party_users",
        "queued",
        "manual",
        "staff",
    )
    assert response.json() == {
        "run_id": run.pk,
        "status": "queued",
        "url": f"http://testserver/api/jobs/users.sync_third_party_users/runs/{run.pk}/",
    }


def test_sync_of_an_unregistered_job_is_a_503_and_queues_nothing(staff_client, monkeypatch):
    monkeypatch.setattr(views, "SYNC_JOB_NAME", "users.no_such_job")

    response = staff_client.post(SYNC_URL)

    assert response.status_code == 503
    assert "users.no_such_job" in response.json()["detail"]
    assert not JobRun.objects.exists()


def test_sync_is_a_post(staff_client):
    assert staff_client.get(SYNC_URL).status_code == 405

"""The staff jobs API: catalog, job detail, run history, run now, pause and resume."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from stayy.models import Job, JobRun
from stayy.scheduling import registry
from tests.jobs_api.conftest import JOB

pytestmark = pytest.mark.django_db

LIST_URL = "/api/jobs/"
DETAIL_URL = f"/api/jobs/{JOB}/"
RUNS_URL = f"/api/jobs/{JOB}/runs/"

JOB_KEYS = {
    "name",
    "description",
    "trigger",
    "schedule",
    "timeout",
    "misfire_grace",
    "overlap",
    "retries",
    "retry_backoff",
    "atomic",
    "jitter",
    "alert_after",
    "enabled",
    "paused",
    "next_run_at",
    "schedule_source",
    "edits",
    "edited_by",
    "edited_at",
    "last_run",
    "url",
}
RUN_KEYS = {
    "id",
    "job_name",
    "scheduled_for",
    "started_at",
    "finished_at",
    "status",
    "duration_ms",
    "host",
    "pid",
    "trigger",
    "attempt",
    "retry_of",
    "requested_by",
    "error",
    "summary",
    "url",
}

ENDPOINTS = [
    ("get", LIST_URL),
    ("get", DETAIL_URL),
    ("get", RUNS_URL),
    ("get", f"{RUNS_URL}{{run_id}}/"),
    ("post", f"{DETAIL_URL}run/"),
    ("post", f"{DETAIL_URL}pause/"),
    ("post", f"{DETAIL_URL}resume/"),
]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_anonymous_is_401_and_changes_nothing(api_client, make_run, method, url):
    run = make_run()
    response = getattr(api_client, method)(url.format(run_id=run.pk))
    assert response.status_code == 401
    assert JobRun.objects.count() == 1
    assert not Job.objects.filter(paused=True).exists()


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_non_staff_is_403_and_changes_nothing(user_client, make_run, method, url):
    run = make_run()
    response = getattr(user_client, method)(url.format(run_id=run.pk))
    assert response.status_code == 403
    assert JobRun.objects.count() == 1
    assert not Job.objects.filter(paused=True).exists()


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_staff_is_allowed(staff_client, make_run, method, url):
    run = make_run()
    response = getattr(staff_client, method)(url.format(run_id=run.pk))
    expected = {"get": 200, "post": 202 if url.endswith("/run/") else 200}[method]
    assert response.status_code == expected, response.content


def test_list_shape_with_last_run(staff_client, make_run, settings):
    settings.STAYY = {**settings.STAYY, "REDIS_URL": "redis://cache:6379/0"}
    older = make_run(ago=600, status=JobRun.Status.FAILED)
    newest = make_run(ago=60, status=JobRun.Status.SUCCEEDED)
    make_run(ago=0, trigger=JobRun.Trigger.MANUAL, status=JobRun.Status.QUEUED)  # not a run yet

    body = staff_client.get(LIST_URL).json()

    assert set(body) == {"leader", "lease_backend", "jobs"}
    assert body["lease_backend"] == "redis"
    jobs = {job["name"]: job for job in body["jobs"]}
    job = jobs[JOB]
    assert set(job) == JOB_KEYS
    spec = registry.get(JOB)
    assert job["trigger"] == spec.schedule.key
    assert job["schedule"] == spec.schedule.describe() != job["trigger"]
    assert job["timeout"] == 600
    assert job["enabled"] is True and job["paused"] is False
    assert job["url"] == f"http://testserver{DETAIL_URL}"
    assert job["last_run"]["id"] == newest.pk != older.pk
    assert job["last_run"]["status"] == "succeeded"
    # Every job of the registry is listed, and nothing else.
    assert sorted(jobs) == registry.job_names()


def test_list_lease_backend_is_database_without_redis(staff_client, settings):
    settings.STAYY = {**settings.STAYY, "REDIS_URL": ""}
    body = staff_client.get(LIST_URL).json()
    assert body["lease_backend"] == "database"
    assert {job["name"]: job for job in body["jobs"]}[JOB]["last_run"] is None


def test_leader_is_shown_while_its_lease_is_unexpired(staff_client, leader_row):
    lease = leader_row(expires_in=30)
    leader = staff_client.get(LIST_URL).json()["leader"]
    assert leader["host"] == "jobs-host"
    assert leader["pid"] == 777
    assert leader["backend"] == "database"
    assert leader["since"].replace("Z", "+00:00")[:19] == lease.since.isoformat()[:19]


def test_no_leader_when_the_lease_expired(staff_client, leader_row):
    leader_row(expires_in=-1)
    assert staff_client.get(LIST_URL).json()["leader"] is None


def test_no_leader_without_a_lease_row(staff_client):
    assert staff_client.get(LIST_URL).json()["leader"] is None


def test_detail_of_a_dotted_name(staff_client, make_run):
    run = make_run(status=JobRun.Status.TIMED_OUT)
    body = staff_client.get(DETAIL_URL).json()
    assert set(body) == JOB_KEYS
    assert body["name"] == JOB
    assert body["last_run"] == {
        "id": run.pk,
        "status": "timed_out",
        "scheduled_for": body["last_run"]["scheduled_for"],
    }


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", ""),
        ("get", "runs/"),
        ("get", "runs/1/"),
        ("post", "run/"),
        ("post", "pause/"),
        ("post", "resume/"),
    ],
)
def test_unknown_job_is_404_with_a_detail(staff_client, method, suffix):
    response = getattr(staff_client, method)(f"/api/jobs/nope.missing/{suffix}")
    assert response.status_code == 404
    assert "unknown job 'nope.missing'" in response.json()["detail"]
    assert JOB in response.json()["detail"]  # it lists the known jobs
    assert not JobRun.objects.exists()
    assert not Job.objects.filter(name="nope.missing").exists()


def test_runs_newest_first_without_traceback(staff_client, make_run):
    now = timezone.now()
    old = make_run(scheduled_for=now - timedelta(hours=2))
    tie_first = make_run(scheduled_for=now - timedelta(hours=1))
    # Same time (one tick has one scheduled row; a manual run may share the time): newer id first.
    tie_second = make_run(scheduled_for=now - timedelta(hours=1), trigger=JobRun.Trigger.MANUAL)
    newest = make_run(scheduled_for=now - timedelta(minutes=1))
    make_run(job_name="other.job", scheduled_for=now)  # another job's run

    body = staff_client.get(RUNS_URL).json()

    assert body["count"] == 4
    assert [run["id"] for run in body["results"]] == [newest.pk, tie_second.pk, tie_first.pk, old.pk]
    first = body["results"][0]
    assert set(first) == RUN_KEYS
    assert first["url"] == f"http://testserver{RUNS_URL}{newest.pk}/"
    assert first["duration_ms"] == 1200 and first["host"] == "web-1" and first["pid"] == 4242


def test_runs_filter_by_status_and_trigger(staff_client, make_run):
    failed = make_run(ago=10, status=JobRun.Status.FAILED, error="boom")
    manual = make_run(ago=20, trigger=JobRun.Trigger.MANUAL, requested_by="alice")
    make_run(ago=30, status=JobRun.Status.SKIPPED, error="still running elsewhere")

    by_status = staff_client.get(RUNS_URL, {"status": "failed"}).json()
    assert [r["id"] for r in by_status["results"]] == [failed.pk]
    assert by_status["results"][0]["error"] == "boom"

    by_trigger = staff_client.get(RUNS_URL, {"trigger": "manual"}).json()
    assert [r["id"] for r in by_trigger["results"]] == [manual.pk]
    assert by_trigger["results"][0]["requested_by"] == "alice"

    both = staff_client.get(RUNS_URL, {"status": "failed", "trigger": "manual"}).json()
    assert both["count"] == 0

    assert staff_client.get(RUNS_URL, {"status": "exploded"}).status_code == 400


def test_runs_are_paginated(staff_client, make_runs):
    runs = make_runs(7)
    first = staff_client.get(RUNS_URL, {"page_size": 3}).json()
    assert first["count"] == 7
    assert [r["id"] for r in first["results"]] == [r.pk for r in runs[:3]]
    assert first["previous"] is None and "page=2" in first["next"]

    last = staff_client.get(RUNS_URL, {"page_size": 3, "page": 3}).json()
    assert [r["id"] for r in last["results"]] == [runs[6].pk]
    assert last["next"] is None


def test_runs_query_count_does_not_grow_with_page_size(staff_client, make_runs):
    make_runs(40)
    staff_client.get(RUNS_URL)  # first call may create the catalog row

    def queries_for(page_size: int) -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = staff_client.get(RUNS_URL, {"page_size": page_size})
        assert len(response.json()["results"]) == page_size
        return len(ctx.captured_queries)

    assert queries_for(2) == queries_for(40)


def test_run_detail_adds_the_traceback(staff_client, make_run):
    run = make_run(
        status=JobRun.Status.FAILED,
        error="ValueError: bad row",
        traceback='Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad row\n',
        summary={"processed": 3},
    )
    body = staff_client.get(f"{RUNS_URL}{run.pk}/").json()
    assert set(body) == RUN_KEYS | {"traceback", "log"}
    assert body["traceback"].endswith("ValueError: bad row\n")
    assert body["summary"] == {"processed": 3}
    assert body["status"] == "failed"


def test_run_detail_of_another_job_or_missing_run_is_404(staff_client, make_run):
    other = make_run(job_name="other.job")
    assert staff_client.get(f"{RUNS_URL}{other.pk}/").status_code == 404
    response = staff_client.get(f"{RUNS_URL}{other.pk + 1000}/")
    assert response.status_code == 404
    assert "has no run" in response.json()["detail"]


def test_run_now_queues_a_manual_run_and_runs_nothing(staff_client):
    response = staff_client.post(f"{DETAIL_URL}run/")

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    run = JobRun.objects.get()
    assert body["run_id"] == run.pk
    assert body["url"] == f"http://testserver{RUNS_URL}{run.pk}/"
    assert run.job_name == JOB
    assert run.trigger == JobRun.Trigger.MANUAL
    assert run.status == JobRun.Status.QUEUED  # nothing ran inside the request
    assert run.started_at is None and not run.active
    assert run.requested_by == "staff"
    assert staff_client.get(body["url"]).json()["status"] == "queued"


def test_pause_and_resume_flip_the_catalog(staff_client):
    paused = staff_client.post(f"{DETAIL_URL}pause/")
    assert paused.status_code == 200
    assert paused.json()["paused"] is True
    assert set(paused.json()) == JOB_KEYS
    job = Job.objects.get(name=JOB)
    assert job.paused is True and job.paused_by == "staff"

    long_ago = timezone.now() - timedelta(days=1)
    Job.objects.filter(name=JOB).update(schedule_since=long_ago)

    resumed = staff_client.post(f"{DETAIL_URL}resume/")
    assert resumed.status_code == 200
    assert resumed.json()["paused"] is False
    job.refresh_from_db()
    assert job.paused is False and job.paused_by == ""
    # Ticks that fell in the pause are not owed a run.
    assert job.schedule_since > long_ago + timedelta(hours=23)


@pytest.mark.parametrize("page_size", ["null", "0", "501", "2&page_size=3"])
def test_a_run_page_size_outside_1_to_500_is_a_400_naming_it(staff_client, page_size):
    response = staff_client.get(f"{RUNS_URL}?page_size={page_size}")

    assert response.status_code == 400
    assert response.json() == {"page_size": ["Give one whole number from 1 to 500."]}

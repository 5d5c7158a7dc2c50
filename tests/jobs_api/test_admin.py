"""The jobs admin: read-only pages, run now/pause/resume, and a run history never counted in full."""

from __future__ import annotations

import pytest
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from stayy.admin import runs as stayy_admin
from stayy.admin.common import human_duration
from stayy.conf import stayy_settings
from stayy.models import Job, JobRun
from tests.jobs_api.conftest import JOB

pytestmark = pytest.mark.django_db

JOB_CHANGELIST = reverse("admin:stayy_job_changelist")
RUN_CHANGELIST = reverse("admin:stayy_jobrun_changelist")
LEASE_CHANGELIST = reverse("admin:stayy_leaderlease_changelist")


def job_change_url(name: str = JOB) -> str:
    return reverse("admin:stayy_job_change", args=[quote(name)])


def act(client, action: str, *names: str):
    data = {"action": action, "index": "0", helpers.ACTION_CHECKBOX_NAME: list(names)}
    return client.post(JOB_CHANGELIST, data, follow=True)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_job_changelist_lists_registered_jobs_with_last_run(superuser_client, make_run):
    make_run(status=JobRun.Status.FAILED)
    response = superuser_client.get(JOB_CHANGELIST)
    assert response.status_code == 200
    content = response.content.decode()
    assert JOB in content  # the catalog row exists even before any leader wrote it
    assert "#c62828" in content  # the last run's badge is red: it failed
    assert 'value="run_now"' in content and 'value="pause"' in content and 'value="resume"' in content
    assert "Add job" not in content


def test_job_change_page_is_read_only(superuser_client, make_run):
    make_run()
    superuser_client.get(JOB_CHANGELIST)  # the changelist writes the catalog rows
    response = superuser_client.get(job_change_url())
    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="_save"' not in content
    assert f"?job_name={JOB}" in content  # link to the job's run history
    before = Job.objects.get(name=JOB)
    superuser_client.post(job_change_url(), {"timeout": "1", "paused": "on"})
    after = Job.objects.get(name=JOB)
    assert (after.timeout, after.paused) == (before.timeout, before.paused)


def test_job_cannot_be_added_or_deleted(superuser_client):
    superuser_client.get(JOB_CHANGELIST)
    assert superuser_client.get(reverse("admin:stayy_job_add")).status_code == 403
    assert superuser_client.post(reverse("admin:stayy_job_delete", args=[quote(JOB)])).status_code == 403
    assert Job.objects.filter(name=JOB).exists()


def test_pause_and_resume_actions(superuser_client):
    superuser_client.get(JOB_CHANGELIST)

    response = act(superuser_client, "pause", JOB)
    assert response.status_code == 200
    job = Job.objects.get(name=JOB)
    assert job.paused is True and job.paused_by == "root"
    assert any("Paused" in m and JOB in m for m in messages_of(response))

    # Listed but never scheduled by a leader: no tick is owed yet.
    assert job.schedule_since is None
    before = timezone.now()
    response = act(superuser_client, "resume", JOB)
    job.refresh_from_db()
    assert job.paused is False
    assert job.schedule_since is not None and job.schedule_since >= before
    assert any("Resumed" in m for m in messages_of(response))


def test_run_now_action_queues_a_run_and_warns_without_a_leader(superuser_client):
    superuser_client.get(JOB_CHANGELIST)

    response = act(superuser_client, "run_now", JOB)

    run = JobRun.objects.get()
    assert (run.job_name, run.status, run.trigger, run.requested_by) == (JOB, "queued", "manual", "root")
    assert run.started_at is None
    texts = messages_of(response)
    assert any(f"run {run.pk}" in m for m in texts)
    assert any("No job server leads right now" in m for m in texts)


def test_run_now_action_does_not_warn_with_a_leader(superuser_client, leader_row):
    leader_row(expires_in=30)
    superuser_client.get(JOB_CHANGELIST)
    response = act(superuser_client, "run_now", JOB)
    assert JobRun.objects.filter(status="queued").count() == 1
    assert not any("No job server leads" in m for m in messages_of(response))


def test_actions_need_the_change_job_permission(client):
    viewer = get_user_model().objects.create_user(
        username="viewer", password="viewer-pass-123", is_staff=True
    )
    viewer.user_permissions.add(Permission.objects.get(codename="view_job", content_type__app_label="stayy"))
    client.force_login(viewer)

    response = client.get(JOB_CHANGELIST)
    assert response.status_code == 200
    assert 'value="pause"' not in response.content.decode()

    act(client, "pause", JOB)
    act(client, "run_now", JOB)
    assert Job.objects.get(name=JOB).paused is False
    assert not JobRun.objects.exists()


def test_run_changelist_badges_durations_and_filters(superuser_client, make_run):
    make_run(ago=10, status=JobRun.Status.FAILED, error="boom: upstream 503", duration_ms=1200)
    make_run(ago=20, status=JobRun.Status.SUCCEEDED, duration_ms=180_000)
    make_run(ago=30, status=JobRun.Status.MISSED, error="missed during failover", duration_ms=None)

    response = superuser_client.get(RUN_CHANGELIST)
    assert response.status_code == 200
    content = response.content.decode()
    for colour in ("#c62828", "#2e7d32", "#757575"):
        assert colour in content
    assert "1.2 s" in content and "3 min" in content
    assert "3 job runs" in content

    failed = superuser_client.get(RUN_CHANGELIST, {"status__exact": "failed"}).content.decode()
    assert "1.2 s" in failed and "3 min" not in failed

    found = superuser_client.get(RUN_CHANGELIST, {"q": "failover"}).content.decode()
    assert "#757575" in found and "#c62828" not in found

    by_job = superuser_client.get(RUN_CHANGELIST, {"job_name": JOB}).content.decode()
    assert "3 job runs" in by_job
    assert "0 job runs" in superuser_client.get(RUN_CHANGELIST, {"job_name": "other.job"}).content.decode()


def run_changelist_queries(client) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(RUN_CHANGELIST)
    assert response.status_code == 200
    return [q["sql"] for q in ctx.captured_queries]


def test_run_changelist_never_counts_the_whole_history(superuser_client, make_run):
    for i in range(5):
        make_run(ago=60 * (i + 1))
    few = run_changelist_queries(superuser_client)
    for i in range(5, 200):
        make_run(ago=60 * (i + 1))
    many = run_changelist_queries(superuser_client)

    assert len(few) == len(many)
    counts = [sql for sql in many if "COUNT(" in sql.upper()]
    assert counts, "the changelist still counts, but only up to the cap"
    assert all("LIMIT" in sql.upper() for sql in counts), counts


def test_run_changelist_says_when_the_count_is_capped(superuser_client, make_run, monkeypatch):
    monkeypatch.setattr(stayy_admin.CappedCountPaginator, "cap", 10)
    for i in range(30):
        make_run(ago=60 * (i + 1))
    content = superuser_client.get(RUN_CHANGELIST).content.decode()
    assert "10+ job runs" in content
    assert "30 job runs" not in content


def test_run_change_page_shows_summary_traceback_and_log(superuser_client, make_run):
    run = make_run(
        status=JobRun.Status.FAILED,
        error="KeyError: 'id'",
        traceback="Traceback (most recent call last):\n  File \"<module>\", line 1\nKeyError: 'id'\n",
        summary={"processed": 2, "batch": {"size": 500}},
        log="2025-03-01T10:00:30.001+00:00 INFO stayy.jobs: run started\n<b>not markup</b>\n",
    )
    response = superuser_client.get(reverse("admin:stayy_jobrun_change", args=[run.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    pretty = '{\n  "batch": {\n    "size": 500\n  },\n  "processed": 2\n}'.replace('"', "&quot;")
    assert f"<pre>{pretty}</pre>" in content
    assert "<pre" in content and "File &quot;&lt;module&gt;&quot;, line 1" in content
    assert (
        '<pre class="stayy-run-log" style="white-space:pre-wrap">'
        "2025-03-01T10:00:30.001+00:00 INFO stayy.jobs: run started\n&lt;b&gt;not markup&lt;/b&gt;\n</pre>"
    ) in content
    assert 'name="_save"' not in content


def test_runs_cannot_be_added_or_deleted(superuser_client, make_run):
    run = make_run()
    assert superuser_client.get(reverse("admin:stayy_jobrun_add")).status_code == 403
    assert superuser_client.post(reverse("admin:stayy_jobrun_delete", args=[run.pk])).status_code == 403
    assert JobRun.objects.filter(pk=run.pk).exists()


def test_leader_lease_pages(superuser_client, leader_row):
    lease = leader_row(expires_in=30)
    response = superuser_client.get(LEASE_CHANGELIST)
    assert response.status_code == 200
    content = response.content.decode()
    assert "jobs-host" in content
    assert 'alt="True"' in content  # leading now

    change = superuser_client.get(reverse("admin:stayy_leaderlease_change", args=[quote(lease.name)]))
    assert change.status_code == 200
    assert stayy_settings.job_name in change.content.decode()
    assert superuser_client.get(reverse("admin:stayy_leaderlease_add")).status_code == 403


def test_expired_lease_is_not_leading(superuser_client, leader_row):
    leader_row(expires_in=-5)
    content = superuser_client.get(LEASE_CHANGELIST).content.decode()
    assert 'alt="False"' in content and 'alt="True"' not in content


@pytest.mark.parametrize(
    ("milliseconds", "text"),
    [
        (None, "-"),
        (850, "850 ms"),
        (1200, "1.2 s"),
        (2000, "2 s"),
        (90_000, "1.5 min"),
        (180_000, "3 min"),
        (5_400_000, "1.5 h"),
    ],
)
def test_human_duration(milliseconds, text):
    assert human_duration(milliseconds) == text

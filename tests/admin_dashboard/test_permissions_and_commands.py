"""Who may see the dashboard and use its commands, and what run now / pause / resume do."""

from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from stayy.models import Job, JobRun
from tests.admin_dashboard.conftest import PURGE, STATS, staff_with

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("admin:stayy_job_dashboard")
RUN_NOW = reverse("admin:stayy_job_run_now")
PAUSE = reverse("admin:stayy_job_pause")
RESUME = reverse("admin:stayy_job_resume")
COMMANDS = (RUN_NOW, PAUSE, RESUME)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_anonymous_visitors_are_sent_to_the_admin_login(client):
    for url in (DASHBOARD, *COMMANDS):
        response = client.post(url, {"name": PURGE}) if url in COMMANDS else client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("admin:login") + "?next="), url
    assert not JobRun.objects.exists()
    assert not Job.objects.filter(paused=True).exists()


def test_non_staff_users_are_sent_to_the_admin_login(client):
    client.force_login(get_user_model().objects.create_user(username="plain", password="plain-pass-123"))
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_staff_without_the_job_permissions_get_403(client):
    client.force_login(staff_with(username="other-staff"))
    assert client.get(DASHBOARD).status_code == 403
    for url in COMMANDS:
        assert client.post(url, {"name": PURGE}).status_code == 403, url
    assert not JobRun.objects.exists()


def test_viewers_see_the_page_without_commands_and_cannot_post_them(viewer_client):
    response = viewer_client.get(DASHBOARD)
    assert response.status_code == 200
    content = response.content.decode()
    assert f'data-job="{PURGE}"' in content
    assert "data-command=" not in content and ">Commands<" not in content
    job_page = viewer_client.get(reverse("admin:stayy_job_change", args=[quote(PURGE)]))
    assert job_page.status_code == 200  # the dashboard wrote the catalog rows
    assert "data-command=" not in job_page.content.decode()

    for url in COMMANDS:
        assert viewer_client.post(url, {"name": PURGE}).status_code == 403, url
    assert not JobRun.objects.exists()
    assert Job.objects.get(name=PURGE).paused is False


def test_staff_with_change_permission_get_the_commands(client):
    client.force_login(staff_with("change_job", username="operator"))
    content = client.get(DASHBOARD).content.decode()
    assert content.count('data-command="run-now"') == 3
    response = client.post(RUN_NOW, {"name": PURGE, "next": DASHBOARD}, follow=True)
    assert response.status_code == 200
    run = JobRun.objects.get()
    assert (run.job_name, run.status, run.requested_by) == (PURGE, "queued", "operator")


def test_commands_need_post_and_csrf(superuser_client):
    for url in COMMANDS:
        assert superuser_client.get(url, {"name": PURGE}).status_code == 405, url
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(get_user_model().objects.get(username="root"))
    assert strict.post(RUN_NOW, {"name": PURGE}).status_code == 403
    assert not JobRun.objects.exists()


def test_run_now_queues_a_run_and_never_runs_it_in_the_request(superuser_client, leader_row):
    leader_row()
    response = superuser_client.post(RUN_NOW, {"name": STATS, "next": DASHBOARD}, follow=True)

    assert response.redirect_chain == [(DASHBOARD, 302)]
    run = JobRun.objects.get()
    assert (run.job_name, run.status, run.trigger, run.requested_by) == (STATS, "queued", "manual", "root")
    assert run.started_at is None and run.host == "" and run.pid is None
    assert any(f"Queued {STATS} (run {run.pk})" in m for m in messages_of(response))
    assert not any("No job server leads" in m for m in messages_of(response))


def test_run_now_without_a_leader_says_the_run_waits(superuser_client):
    response = superuser_client.post(RUN_NOW, {"name": PURGE}, follow=True)
    assert JobRun.objects.filter(status="queued").count() == 1
    assert any("No job server leads right now" in m for m in messages_of(response))


def test_pause_and_resume_set_the_flags_and_confirm(superuser_client):
    superuser_client.get(DASHBOARD)
    response = superuser_client.post(PAUSE, {"name": PURGE, "next": DASHBOARD}, follow=True)
    job = Job.objects.get(name=PURGE)
    assert (job.paused, job.paused_by) == (True, "root")
    assert any(f"Paused {PURGE} on the whole cluster" in m for m in messages_of(response))
    content = response.content.decode()
    row = content[content.index(f'data-job="{PURGE}"') :]
    row = row[: row.index("</tr>")]
    assert "state-paused" in row and 'data-command="resume"' in row and 'data-command="pause"' not in row

    before = timezone.now()
    response = superuser_client.post(RESUME, {"name": PURGE, "next": DASHBOARD}, follow=True)
    job.refresh_from_db()
    assert (job.paused, job.paused_by) == (False, "")
    assert job.schedule_since is not None and job.schedule_since >= before
    assert any(f"Resumed {PURGE}" in m for m in messages_of(response))
    assert not JobRun.objects.exists()  # neither command runs anything


def test_commands_from_the_job_page_go_back_to_it(superuser_client):
    superuser_client.get(DASHBOARD)  # writes the catalog rows
    job_page = reverse("admin:stayy_job_change", args=[quote(PURGE)])
    response = superuser_client.get(job_page)
    assert response.status_code == 200
    content = response.content.decode()
    assert 'data-command="run-now"' in content and 'data-command="pause"' in content
    response = superuser_client.post(PAUSE, {"name": PURGE, "next": job_page}, follow=True)
    assert response.redirect_chain == [(job_page, 302)]
    assert Job.objects.get(name=PURGE).paused is True
    assert 'data-command="resume"' in response.content.decode()


def test_unknown_jobs_and_foreign_redirects_are_refused_clearly(superuser_client):
    response = superuser_client.post(RUN_NOW, {"name": "no.such_job", "next": DASHBOARD}, follow=True)
    assert response.status_code == 200
    assert any("unknown job 'no.such_job'" in m for m in messages_of(response))
    assert not JobRun.objects.exists()

    response = superuser_client.post(PAUSE, {"name": PURGE, "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == DASHBOARD
    response = superuser_client.post(RESUME, {"name": PURGE})
    assert response.status_code == 302 and response["Location"] == DASHBOARD

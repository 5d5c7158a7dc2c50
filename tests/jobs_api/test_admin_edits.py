"""The job page's edit form: preview (schedule in words, next five fire times) before saving, and reset."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from stayy.models import Job
from tests.jobs_api.conftest import JOB

pytestmark = pytest.mark.django_db

EDIT = reverse("admin:stayy_job_edit", args=[quote(JOB)])
RESET = reverse("admin:stayy_job_reset", args=[quote(JOB)])
PAGE = reverse("admin:stayy_job_change", args=[quote(JOB)])
#: The form's fields as the job is declared (stayy/jobs.py: cron "17 3 * * *", timeout 600).
CURRENT = {
    "interval": "",
    "cron": "17 3 * * *",
    "timezone": "UTC",
    "enabled": "true",
    "timeout": "600.0",
    "retries": "0",
    "overlap": "skip",
    "jitter": "0.0",
}


@pytest.fixture(autouse=True)
def catalog_rows(superuser_client):
    """The job list writes the catalog's rows, as on a deployment that has not led yet."""
    superuser_client.get(reverse("admin:stayy_job_changelist"))


def fire_times(page: str) -> list[datetime]:
    block = page.split('data-preview="fire-times">', 1)[1].split("</ol>", 1)[0]
    return [datetime.fromisoformat(item.split("</li>")[0]) for item in block.split("<li>")[1:]]


def test_the_form_shows_the_job_as_it_is_and_the_page_links_to_it(superuser_client):
    assert 'data-command="edit"' in superuser_client.get(PAGE).content.decode()

    form = superuser_client.get(EDIT).context["form"]

    assert form.initial["cron"] == "17 3 * * *" and form.initial["timeout"] == 600


def test_a_preview_shows_words_and_the_next_five_fire_times_and_saves_nothing(superuser_client):
    response = superuser_client.post(EDIT, {**CURRENT, "cron": "", "interval": "90", "_preview": "1"})

    page = response.content.decode()
    assert response.status_code == 200
    assert response.context["preview"].schedule in page
    times = fire_times(page)
    assert len(times) == 5
    assert all((later - earlier).total_seconds() == 90 for earlier, later in itertools.pairwise(times))
    assert 'name="_save"' in page
    assert Job.objects.get(name=JOB).edits == {}


def test_save_stores_the_changed_fields_only_and_audits_them(superuser_client):
    data = {**CURRENT, "cron": "0 4 * * 1", "timezone": "Europe/Riga", "retries": "2"}
    response = superuser_client.post(EDIT, {**data, "_save": "1"})

    assert response.status_code == 302 and response["Location"] == PAGE
    job = Job.objects.get(name=JOB)
    assert job.edits == {"cron": "0 4 * * 1", "timezone": "Europe/Riga", "retries": 2}
    assert job.trigger == "cron:0 4 * * 1@Europe/Riga"
    history = superuser_client.get(reverse("admin:stayy_job_history", args=[quote(JOB)])).content.decode()
    assert "Edited cron: &#x27;17 3 * * *&#x27; → &#x27;0 4 * * 1&#x27;" in history


def test_a_bad_value_shows_the_job_overrides_words_on_its_field(superuser_client):
    response = superuser_client.post(EDIT, {**CURRENT, "cron": "61 * * * *", "_preview": "1"})

    form = response.context["form"]
    assert response.context["preview"] is None
    assert "cron" in form.errors
    assert "minute" in form.errors["cron"][0].lower()
    assert Job.objects.get(name=JOB).edits == {}


def test_reset_drops_the_edits(superuser_client):
    superuser_client.post(EDIT, {**CURRENT, "cron": "", "interval": "60", "_save": "1"})
    assert Job.objects.get(name=JOB).trigger == "interval:60"

    response = superuser_client.post(RESET)

    assert response.status_code == 302
    job = Job.objects.get(name=JOB)
    assert (job.edits, job.trigger) == ({}, "cron:17 3 * * *@UTC")
    assert LogEntry.objects.filter(object_id=JOB).count() == 2


def test_the_form_needs_the_change_job_permission(client):
    viewer = get_user_model().objects.create_user(username="viewer", password="pw-123456789", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_job", content_type__app_label="stayy"))
    client.force_login(viewer)

    assert 'data-command="edit"' not in client.get(PAGE).content.decode()
    assert client.get(EDIT).status_code == 403
    assert client.post(EDIT, {**CURRENT, "retries": "3", "_save": "1"}).status_code == 403
    assert client.post(RESET).status_code == 403
    assert Job.objects.get(name=JOB).edits == {}

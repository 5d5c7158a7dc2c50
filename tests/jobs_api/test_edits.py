"""Live edits of a job through the API: PATCH /api/jobs/{name}/ and POST .../reset/.

Edits win over JOB_OVERRIDES, which wins over the code; bad values answer 400
naming the field in JOB_OVERRIDES' own words; every edit and reset is in the
admin's history with who, when, and the old and new values.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.admin.models import LogEntry

from config.env import ConfigError
from stayy.models import Job
from stayy.scheduling import registry
from tests.jobs_api.conftest import JOB

pytestmark = pytest.mark.django_db

URL = f"/api/jobs/{JOB}/"


@pytest.fixture
def overrides(settings) -> Iterator[None]:
    """JOB_OVERRIDES re-times the job to every 10 minutes (as if set in the environment)."""
    env = {JOB: {"interval": 600, "retries": 1}}
    settings.STAYY = {**settings.STAYY, "JOB_OVERRIDES": env}
    registry.apply_overrides(env)
    yield
    registry.apply_overrides({})


def override_words(option: dict) -> str:
    """What JOB_OVERRIDES says about the same value, after its "JOB_OVERRIDES: job '…': " prefix."""
    with pytest.raises(ConfigError) as caught:
        registry.apply_overrides({JOB: option})
    registry.apply_overrides({})
    return str(caught.value).split(f"job {JOB!r}: ", 1)[1]


def test_an_edit_answers_the_new_representation_and_is_stored(staff_client, staff_user):
    response = staff_client.patch(URL, {"interval": 5, "retries": 2, "overlap": "queue"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["trigger"], body["schedule"]) == ("interval:5", "every 5 seconds")
    assert (body["retries"], body["overlap"], body["timeout"]) == (2, "queue", 600)
    assert body["schedule_source"] == "edited"
    assert body["edits"] == {"interval": 5, "retries": 2, "overlap": "queue"}
    assert body["edited_by"] == staff_user.username and body["edited_at"]
    row = Job.objects.get(name=JOB)
    assert (row.trigger, row.retries, row.edits["interval"]) == ("interval:5", 2, 5)
    assert staff_client.get(URL).json()["trigger"] == "interval:5"


def test_edits_add_up_and_a_schedule_replaces_the_other_kind(staff_client):
    staff_client.patch(URL, {"interval": 5}, format="json")
    staff_client.patch(URL, {"timeout": 30}, format="json")
    body = staff_client.patch(URL, {"cron": "*/5 * * * *", "timezone": "Europe/Riga"}, format="json").json()

    assert body["edits"] == {"timeout": 30, "cron": "*/5 * * * *", "timezone": "Europe/Riga"}
    assert body["trigger"] == "cron:*/5 * * * *@Europe/Riga"
    assert body["timeout"] == 30


def test_a_time_zone_alone_re_times_the_crontab_line_in_force(staff_client):
    body = staff_client.patch(URL, {"timezone": "Asia/Tokyo"}, format="json").json()

    assert body["trigger"] == "cron:17 3 * * *@Asia/Tokyo"
    assert body["edits"] == {"cron": "17 3 * * *", "timezone": "Asia/Tokyo"}


@pytest.mark.parametrize(
    ("option", "field"),
    [
        ({"retries": 101}, "retries"),
        ({"retries": "3"}, "retries"),
        ({"timeout": 0}, "timeout"),
        ({"overlap": "wait"}, "overlap"),
        ({"enabled": "yes"}, "enabled"),
        ({"jitter": -1}, "jitter"),
        ({"interval": 2.5}, "interval"),
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"interval": 5, "cron": "0 3 * * *"}, "cron"),
        ({"interval": 5, "timezone": "Europe/Riga"}, "timezone"),
    ],
)
def test_a_bad_value_is_a_400_naming_the_field_in_the_words_of_job_overrides(staff_client, option, field):
    before = Job.objects.get(name=JOB) if Job.objects.filter(name=JOB).exists() else None

    response = staff_client.patch(URL, option, format="json")

    assert response.status_code == 400, response.content
    assert response.json() == {field: [override_words(option)]}
    after = Job.objects.filter(name=JOB).first()
    assert after is None or after.edits == (before.edits if before else {})
    assert not LogEntry.objects.exists()


def test_unknown_or_missing_options_and_unknown_jobs(staff_client):
    unknown = staff_client.patch(URL, {"atomic": True, "colour": "red"}, format="json")
    assert unknown.status_code == 400
    assert set(unknown.json()) == {"atomic", "colour"}
    assert "editable: interval, cron" in unknown.json()["colour"][0]

    empty = staff_client.patch(URL, {}, format="json")
    assert empty.status_code == 200 and empty.json()["edits"] == {}, "an empty edit changes nothing"
    assert not LogEntry.objects.exists()
    form = staff_client.patch(URL, {"retries": "2"}, format="multipart")
    assert form.status_code == 415, "an edit is JSON: a form would make every value a string"
    assert staff_client.patch(URL, ["interval", 5], format="json").status_code == 400
    assert staff_client.patch("/api/jobs/nope.job/", {"retries": 1}, format="json").status_code == 404
    assert staff_client.post("/api/jobs/nope.job/reset/").status_code == 404


def test_precedence_edits_over_job_overrides_over_code_and_reset(staff_client, overrides):
    env = staff_client.get(URL).json()
    assert (env["trigger"], env["retries"], env["schedule_source"]) == ("interval:600", 1, "env")

    edited = staff_client.patch(URL, {"interval": 60}, format="json").json()
    assert (edited["trigger"], edited["retries"], edited["schedule_source"]) == ("interval:60", 1, "edited")

    reset = staff_client.post(f"{URL}reset/")
    assert reset.status_code == 200
    body = reset.json()
    assert (body["trigger"], body["retries"], body["schedule_source"]) == ("interval:600", 1, "env")
    assert (body["edits"], body["edited_by"], body["edited_at"]) == ({}, "", None)


def test_without_overrides_the_source_is_the_code(staff_client):
    assert staff_client.get(URL).json()["schedule_source"] == "code"
    staff_client.patch(URL, {"retries": 3}, format="json")
    body = staff_client.get(URL).json()
    assert body["schedule_source"] == "code", "only a schedule edit makes the schedule's source 'edited'"
    assert body["edits"] == {"retries": 3}


def test_every_edit_and_reset_is_in_the_admin_history_with_old_and_new_values(staff_client, staff_user):
    staff_client.patch(URL, {"interval": 5, "retries": 2}, format="json")
    staff_client.patch(URL, {"retries": 4}, format="json")
    staff_client.post(f"{URL}reset/")

    entries = list(LogEntry.objects.filter(object_id=JOB).order_by("action_time"))
    assert [entry.user_id for entry in entries] == [staff_user.pk] * 3
    messages = [entry.get_change_message() for entry in entries]
    assert messages[0] == "Edited interval: unset → 5; retries: 0 → 2"
    assert messages[1] == "Edited retries: 2 → 4"
    assert messages[2] == "Reset interval=5, retries=4"


def test_the_admin_history_page_shows_the_edits(staff_client, admin_client):
    staff_client.patch(URL, {"interval": 5}, format="json")

    page = admin_client.get(f"/admin/stayy/job/{JOB}/history/").content.decode()

    assert "Edited interval: unset → 5" in page

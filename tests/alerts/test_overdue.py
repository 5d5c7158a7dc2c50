"""``alert_after`` and ``job.overdue``: the default (3 intervals, a day for a crontab line), the
override and the live edit, one report per overdue period, and ``job.recovered`` after it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from config.env import ConfigError
from stayy import services
from stayy.models import AlertDelivery, Job, JobRun
from stayy.scheduling import alerts, registry

JOB = "tests.quiet"


def test_alert_after_defaults_to_three_intervals_or_a_day_and_can_be_overridden(make_job):
    assert make_job("tests.every_minute", every=60, sync=False).overdue_after == 180
    assert make_job("tests.nightly", cron="0 3 * * *", sync=False).overdue_after == 86400
    assert make_job("tests.declared", every=60, alert_after=30, sync=False).overdue_after == 30
    registry.apply_overrides({"tests.every_minute": {"alert_after": 900}})
    assert registry.get("tests.every_minute").overdue_after == 900
    registry.apply_overrides({"tests.every_minute": {"interval": 10}})
    assert registry.get("tests.every_minute").overdue_after == 30  # the default follows the schedule
    with pytest.raises(ConfigError, match="alert_after must be a positive number of seconds, got 0"):
        registry.apply_overrides({"tests.every_minute": {"alert_after": 0}})


@pytest.mark.django_db
def test_alert_after_is_in_the_api_and_editable_live(make_job, staff_client):
    make_job(JOB, every=60)
    url = f"/api/jobs/{JOB}/"
    assert staff_client.get(url).json()["alert_after"] == 180
    response = staff_client.patch(url, {"alert_after": 45}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["alert_after"] == 45
    assert Job.objects.get(name=JOB).edits == {"alert_after": 45}
    bad = staff_client.patch(url, {"alert_after": -1}, format="json")
    assert bad.status_code == 400 and "alert_after" in bad.json()


@pytest.mark.django_db(transaction=True)
def test_an_overdue_job_is_reported_once_per_period_and_recovers_on_success(make_job, webhook):
    spec = make_job(JOB, every=60, alert_after=5)
    Job.objects.filter(name=JOB).update(schedule_since=timezone.now() - timedelta(seconds=2))
    assert alerts.check_overdue([spec]) == 0  # within alert_after

    Job.objects.filter(name=JOB).update(schedule_since=timezone.now() - timedelta(seconds=60))
    assert alerts.check_overdue([spec]) == 1
    assert alerts.check_overdue([spec]) == 0, "reported twice in one overdue period"
    services.job_run_in_process(name=JOB)  # a success ends the period
    # A success 60 s ago is older than alert_after again: a new period, reported again.
    JobRun.objects.filter(job_name=JOB).update(finished_at=timezone.now() - timedelta(seconds=60))
    assert alerts.check_overdue([spec]) == 1
    alerts.deliver_due()

    bodies = [json.loads(request.body) for request in webhook.requests]
    assert [body["event"] for body in bodies] == ["job.overdue", "job.recovered", "job.overdue"]
    assert bodies[0]["run"] is None and "no success since it was scheduled" in bodies[0]["text"]
    assert "no success for" in bodies[2]["text"]
    assert AlertDelivery.objects.filter(job_name=JOB).count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_paused_or_disabled_job_is_not_reported_overdue(make_job, webhook):
    spec = make_job(JOB, every=60, alert_after=5)
    Job.objects.filter(name=JOB).update(schedule_since=timezone.now() - timedelta(seconds=60), paused=True)
    assert alerts.check_overdue([spec]) == 0
    Job.objects.filter(name=JOB).update(paused=False, enabled=False)
    assert alerts.check_overdue([spec]) == 0

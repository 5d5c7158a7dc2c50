"""A leader follows live edits within 2 s: the next tick keeps the new schedule, none is lost or doubled,
and the run in flight finishes as it started."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from harness.cluster.evidence import tick_accounting
from stayy import services
from stayy.models import JobRun
from tests.jobs.support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

JOB = "tests.edited_live"
#: The leader polls the catalog every half second; a tick in flight may take as long again.
FOLLOW_BOUND = 2.0


@pytest.fixture
def editor(django_user_model):
    return django_user_model.objects.create_user(username="editor", is_staff=True)


def scheduled(since) -> list[JobRun]:
    return list(JobRun.objects.filter(job_name=JOB, trigger="schedule", created_at__gt=since))


def test_the_leader_follows_an_edited_interval_and_a_reset(make_job, overrides, start_server, editor):
    make_job(JOB, every=3600)
    overrides({})
    start_server()
    time.sleep(1.5)
    assert not scheduled(timezone.now() - timedelta(minutes=1)), "an hourly job ran at once"

    edited_at = timezone.now()
    services.job_edit(name=JOB, changes={"interval": 1}, user=editor)
    first = wait_until(
        lambda: JobRun.objects.filter(job_name=JOB, status="succeeded", created_at__gt=edited_at).first(),
        timeout=FOLLOW_BOUND + 3,
        message="the leader did not follow the edit",
    )
    assert (first.created_at - edited_at).total_seconds() <= FOLLOW_BOUND
    time.sleep(3)
    gaps, duplicates = tick_accounting(
        JOB, start=first.scheduled_for, end=timezone.now() - timedelta(seconds=1.2), every=1
    )
    assert not gaps and not duplicates, (gaps, duplicates)

    # Every 2 s on the grid: from its first tick on, only even ticks, each once.
    regrid_at = timezone.now()
    services.job_edit(name=JOB, changes={"interval": 2}, user=editor)
    time.sleep(FOLLOW_BOUND + 4)
    late = [r for r in scheduled(regrid_at + timedelta(seconds=FOLLOW_BOUND))]
    assert late and all(r.scheduled_for.second % 2 == 0 for r in late), [r.scheduled_for for r in late]
    per_tick = Counter(r.scheduled_for for r in scheduled(edited_at))
    assert max(per_tick.values()) == 1, "a tick ran twice across the edits"

    # Reset: back to hourly, no run after the bound.
    reset_at = timezone.now()
    services.job_reset(name=JOB, user=editor)
    time.sleep(FOLLOW_BOUND + 2)
    assert not scheduled(reset_at + timedelta(seconds=FOLLOW_BOUND)), "runs after the reset to hourly"


def test_a_run_in_flight_finishes_and_the_next_tick_follows_the_new_schedule(
    make_job, overrides, start_server, editor
):
    started, release = threading.Event(), threading.Event()

    def handler(ctx):
        started.set()
        release.wait(10)
        return {"finished": 1}

    make_job(JOB, handler, every=1)
    overrides({})
    start_server()
    assert started.wait(5), "the job never started"
    in_flight = JobRun.objects.get(job_name=JOB, active=True)

    services.job_edit(name=JOB, changes={"interval": 3, "timeout": 30}, user=editor)
    time.sleep(FOLLOW_BOUND)
    release.set()

    in_flight.refresh_from_db()
    wait_until(lambda: JobRun.objects.get(pk=in_flight.pk).status == "succeeded", timeout=5)
    assert JobRun.objects.get(pk=in_flight.pk).summary == {"finished": 1}
    after = wait_until(
        lambda: JobRun.objects.filter(job_name=JOB, status="succeeded").exclude(pk=in_flight.pk).first(),
        timeout=5,
        message="no run after the edit",
    )
    assert after.scheduled_for.timestamp() % 3 == 0, f"{after.scheduled_for} is not on the 3 s grid"

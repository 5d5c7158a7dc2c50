"""The admin lists alert deliveries, read-only, with attempts and last error, linked from the job's page."""

from __future__ import annotations

import pytest

from stayy.models import AlertDelivery
from stayy.scheduling import alerts

pytestmark = pytest.mark.django_db

JOB = "tests.shown"


def test_deliveries_are_listed_with_attempts_and_linked_from_the_job(admin_client, make_job, webhook):
    make_job(JOB)
    alerts.raise_event(job_name=JOB, event=AlertDelivery.Event.JOB_OVERDUE, detail="quiet")
    AlertDelivery.objects.update(attempts=3, last_error="HTTP 502: bad gateway")
    delivery = AlertDelivery.objects.get()

    listing = admin_client.get(f"/admin/stayy/alertdelivery/?job_name={JOB}")
    assert listing.status_code == 200
    assert "job.overdue" in listing.content.decode()
    page = admin_client.get(f"/admin/stayy/alertdelivery/{delivery.pk}/change/").content.decode()
    assert "HTTP 502: bad gateway" in page and ">3<" in page.replace(" ", "")
    assert "Save" not in page  # read-only
    job_page = admin_client.get(f"/admin/stayy/job/{JOB}/change/").content.decode()
    assert f"/admin/stayy/alertdelivery/?job_name={JOB}" in job_page


def test_the_job_page_lists_its_last_twenty_deliveries_newest_first(admin_client, make_job, webhook):
    make_job(JOB)
    for number in range(22):
        alerts.raise_event(job_name=JOB, event=AlertDelivery.Event.JOB_OVERDUE, detail=f"quiet {number}")
    newest = AlertDelivery.objects.order_by("-created_at", "-id").first()
    assert newest is not None
    AlertDelivery.objects.filter(pk=newest.pk).update(attempts=2, last_error="HTTP 500: newest")

    page = admin_client.get(f"/admin/stayy/job/{JOB}/change/").content.decode()

    table = page.split('<table class="job-alerts">', 1)[1].split("</table>", 1)[0]
    rows = table.split("<tr>")[2:]  # after the header row
    assert AlertDelivery.objects.filter(job_name=JOB).count() > 20
    assert len(rows) == 20
    assert "HTTP 500: newest" in rows[0] and "job.overdue" in rows[0]

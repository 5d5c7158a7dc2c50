"""Alerts by email: Django's mail_admins to ADMINS, through a real SMTP server (aiosmtpd) on a free port."""

from __future__ import annotations

from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller

from stayy import services
from stayy.models import AlertDelivery
from stayy.scheduling import alerts
from tests.jobs.support import free_port

pytestmark = pytest.mark.django_db(transaction=True)

JOB = "tests.mailed"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


@pytest.fixture
def inbox(settings):
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.ADMINS = [("Ops", "ops@example.com"), ("Dev", "dev@example.com")]
    settings.SERVER_EMAIL = "stayy@example.com"
    settings.STAYY = {**settings.STAYY, "ALERT_WEBHOOK_URL": "", "ALERT_WEBHOOK_SECRET": ""}
    yield handler
    controller.stop()


def failing(ctx):
    raise ValueError("disk full")


def test_a_failed_run_is_mailed_to_the_admins(make_job, inbox):
    make_job(JOB, failing)
    run = services.job_run_in_process(name=JOB)
    assert inbox.messages == []  # recorded at the run's end, sent by the sender

    assert alerts.deliver_due() == 1
    ((sender, recipients, raw),) = inbox.messages
    assert sender == "stayy@example.com"
    assert sorted(recipients) == ["dev@example.com", "ops@example.com"]
    message = message_from_bytes(raw)
    assert message["Subject"].startswith(f"[stayy] {JOB} run failed (run {run.pk}")
    body = message.get_payload(decode=True).decode()
    assert "ValueError: disk full" in body and "event: run.failed" in body
    (delivery,) = AlertDelivery.objects.filter(job_name=JOB)
    assert (delivery.channel, delivery.status, delivery.attempts) == ("email", "delivered", 1)


def test_an_unreachable_mail_server_is_a_failed_attempt_tried_again(make_job, inbox, settings):
    settings.EMAIL_PORT = free_port()  # nothing listens there
    make_job(JOB, failing)
    services.job_run_in_process(name=JOB)

    assert alerts.deliver_due() == 0
    (delivery,) = AlertDelivery.objects.filter(job_name=JOB)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "refused" in delivery.last_error.lower()

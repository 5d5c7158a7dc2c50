"""The alert webhook: the body and its signature, retries with backoff, at most once under two
senders (threads, and processes on PostgreSQL and SQLite), the storm cap with its summary, and
delivery by a leader off the run's thread."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from stayy import services
from stayy.models import AlertDelivery, JobRun
from stayy.repository import alert_channels, runs
from stayy.scheduling import alerts, runner
from tests.alerts.conftest import SECRET
from tests.jobs.support import PROJECT_DIR, subprocess_env, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

JOB = "tests.alerting"
BOTH = pytest.mark.parametrize(
    "database", [pytest.param("postgresql"), pytest.param("sqlite", marks=pytest.mark.sqlite)]
)
#: A sender process: says it is ready, waits for a line on stdin, sends the due alerts, says how many.
SENDER = """
import sys
from stayy.scheduling import alerts
print("ready", flush=True)
sys.stdin.readline()
print("delivered", alerts.deliver_due(), flush=True)
"""


def failing(ctx):
    raise ValueError("boom")


def bodies(receiver) -> list[dict]:
    return [json.loads(request.body) for request in receiver.requests]


def deliveries(**filters) -> list[AlertDelivery]:
    return list(AlertDelivery.objects.filter(job_name=JOB, **filters).order_by("id"))


@BOTH
def test_a_failed_run_is_posted_once_with_the_documented_body_signed_over_the_raw_bytes(
    make_job, webhook, database
):
    make_job(JOB, failing)
    run = services.job_run_in_process(name=JOB)
    assert [d.status for d in deliveries()] == ["pending"]  # recorded at the run's end, not sent there
    assert webhook.requests == []

    assert alerts.deliver_due() == 1
    assert alerts.deliver_due() == 0
    (request,) = webhook.requests
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Stayy-Signature"] == expected
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.body)
    assert set(body) == {"event", "job", "run", "sent_at", "text"}
    assert body["event"] == "run.failed"
    assert body["job"] == JOB
    run.refresh_from_db()
    assert body["run"] == {
        "id": run.pk,
        "status": "failed",
        "error": "ValueError: boom",
        "scheduled_for": run.scheduled_for.isoformat(),
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat(),
        "host": run.host,
        "url": f"https://stayy.example.com/admin/stayy/jobrun/{run.pk}/change/",
    }
    assert JOB in body["text"] and "ValueError: boom" in body["text"]
    sent_at = timezone.datetime.fromisoformat(body["sent_at"])
    assert abs((timezone.now() - sent_at).total_seconds()) < 60
    (delivery,) = deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 1, "")


def test_a_receiver_answering_500_is_tried_again_after_the_backoff(make_job, webhook, quick_retries):
    make_job(JOB, failing)
    services.job_run_in_process(name=JOB)
    webhook.statuses = [500]

    assert alerts.deliver_due() == 0
    (delivery,) = deliveries()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "HTTP 500" in delivery.last_error
    assert alerts.deliver_due() == 0, "tried again before its backoff"

    wait_until(lambda: alerts.deliver_due() == 1, timeout=10, message="never delivered after the 500")
    first, second = webhook.requests
    assert second.at - first.at >= alerts.RETRY_FIRST_DELAY * 0.9
    assert first.body != second.body or json.loads(first.body)["event"] == "run.failed"
    assert json.loads(second.body)["run"] == json.loads(first.body)["run"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 2, "")


def test_a_receiver_that_took_the_alert_but_did_not_answer_in_time_never_gets_it_again(
    make_job, webhook, quick_retries, monkeypatch
):
    monkeypatch.setattr(alert_channels, "WEBHOOK_TIMEOUT", 0.5)
    make_job(JOB, failing)
    services.job_run_in_process(name=JOB)
    webhook.delay = 1.5  # answers after the sender stopped waiting

    assert alerts.deliver_due() == 0
    time.sleep(2 * alerts.RETRY_FIRST_DELAY + webhook.delay)
    assert alerts.deliver_due() == 0

    (delivery,) = deliveries()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "ReadTimeout" in delivery.last_error
    assert len(webhook.requests) == 1, "an alert that may have arrived was sent again"


def test_a_delivery_is_given_up_an_hour_after_its_event(make_job, webhook, quick_retries, monkeypatch):
    monkeypatch.setattr(alerts, "RETRY_FOR", 1.0)
    make_job(JOB, failing)
    services.job_run_in_process(name=JOB)
    webhook.statuses = [500] * 100

    wait_until(
        lambda: alerts.deliver_due() == 0 and deliveries()[0].status == "failed",
        timeout=10,
        message="never given up",
    )
    (delivery,) = deliveries()
    assert 1 <= delivery.attempts <= 5
    assert len(webhook.requests) == delivery.attempts
    time.sleep(0.5)
    alerts.deliver_due()
    assert len(webhook.requests) == delivery.attempts, "a given-up alert was sent again"


def test_two_concurrent_senders_deliver_each_alert_exactly_once(webhook, settings):
    settings.STAYY = {**settings.STAYY, "ALERT_MAX_PER_HOUR": 100}
    for _ in range(30):
        alerts.raise_event(job_name=JOB, event=AlertDelivery.Event.JOB_OVERDUE, detail="test")
    webhook.delay = 0.01
    start = threading.Barrier(2)
    delivered: list[int] = []

    def sender() -> None:
        start.wait()
        delivered.append(alerts.deliver_due())

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(delivered) == 30
    assert all(count > 0 for count in delivered), f"one sender did all the work: {delivered}"
    ids = [request.headers["X-Stayy-Delivery"] for request in webhook.requests]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert {(d.status, d.attempts) for d in deliveries()} == {("delivered", 1)}


@BOTH
@pytest.mark.processes
def test_two_sender_processes_deliver_each_alert_exactly_once(webhook, settings, tmp_path, database):
    settings.STAYY = {**settings.STAYY, "ALERT_MAX_PER_HOUR": 1000}
    events = 100  # enough that two senders racing for one row (a claim that is not exclusive) meet
    for number in range(events):
        alerts.raise_event(job_name=JOB, event=AlertDelivery.Event.JOB_OVERDUE, detail=f"event {number}")
    webhook.delay = 0.01
    env = subprocess_env(
        JOB_ALERT_WEBHOOK_URL=webhook.url, JOB_ALERT_WEBHOOK_SECRET=SECRET, DJANGO_ADMINS=None
    )
    logs = [tmp_path / "sender-a.log", tmp_path / "sender-b.log"]
    senders: list[subprocess.Popen[str]] = []
    try:
        for log in logs:
            with log.open("wb") as stderr:
                senders.append(
                    subprocess.Popen(
                        [sys.executable, "manage.py", "shell", "--no-imports", "-c", SENDER],
                        cwd=PROJECT_DIR,
                        env=env,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=stderr,
                        text=True,
                    )
                )
        for sender, log in zip(senders, logs, strict=True):
            assert sender.stdout is not None and sender.stdout.readline() == "ready\n", log.read_text()
        for sender in senders:  # both start claiming at the same moment
            assert sender.stdin is not None
            sender.stdin.write("go\n")
            sender.stdin.flush()
        outputs = [sender.communicate(timeout=60)[0] for sender in senders]
    finally:
        for sender in senders:
            sender.kill()
            sender.wait(10)
    assert [sender.returncode for sender in senders] == [0, 0], [log.read_text() for log in logs]
    delivered = [int(output.split()[-1]) for output in outputs]

    arrived = Counter(body["text"].rsplit(": ", 1)[1] for body in bodies(webhook))
    twice = {text: count for text, count in arrived.items() if count > 1}
    assert not twice, f"alerts that arrived more than once: {twice}"
    assert set(arrived) == {f"event {number}" for number in range(events)}
    assert {(d.status, d.attempts) for d in deliveries()} == {("delivered", 1)}
    assert sum(delivered) == events
    assert all(count > 0 for count in delivered), f"one sender did all the work: {delivered}"


def test_past_the_hourly_cap_one_summary_is_sent_and_the_rest_held_back(make_job, webhook, settings):
    settings.STAYY = {**settings.STAYY, "ALERT_MAX_PER_HOUR": 3}
    make_job(JOB, failing)
    for _ in range(6):
        services.job_run_in_process(name=JOB)
    alerts.deliver_due()

    events = [body["event"] for body in bodies(webhook)]
    assert events == ["run.failed"] * 3 + ["alerts.suppressed"]
    summary = bodies(webhook)[-1]
    assert summary["run"] is None and "more than 3 alerts" in summary["text"]
    assert sorted(d.status for d in deliveries()) == ["delivered"] * 4 + ["suppressed"] * 3
    # Once the hour has passed, alerts flow again.
    AlertDelivery.objects.update(created_at=timezone.now() - timedelta(hours=1, seconds=1))
    services.job_run_in_process(name=JOB)
    alerts.deliver_due()
    assert [body["event"] for body in bodies(webhook)][-1] == "run.failed"


def test_the_first_success_after_failures_raises_recovered_once(make_job, webhook):
    outcome = {"fail": True}

    def flaky(ctx):
        if outcome["fail"]:
            raise RuntimeError("down")

    make_job(JOB, flaky)
    services.job_run_in_process(name=JOB)
    services.job_run_in_process(name=JOB)
    outcome["fail"] = False
    ok = services.job_run_in_process(name=JOB)
    services.job_run_in_process(name=JOB)
    alerts.deliver_due()

    assert [body["event"] for body in bodies(webhook)] == ["run.failed", "run.failed", "job.recovered"]
    recovered = bodies(webhook)[-1]
    assert recovered["run"]["id"] == ok.pk and recovered["run"]["status"] == "succeeded"


def test_a_timed_out_run_raises_run_timed_out_once(make_job, webhook):
    def slow(ctx):
        ctx.sleep(30)

    make_job(JOB, slow, timeout=0.5)
    run = services.job_run_in_process(name=JOB)
    assert run.status == "timed_out"
    alerts.deliver_due()
    assert [(b["event"], b["run"]["id"]) for b in bodies(webhook)] == [("run.timed_out", run.pk)]


def test_a_run_of_a_lost_process_raises_run_lost(make_job, webhook, settings):
    make_job(JOB)
    run = runs.running_run(job_name=JOB, scheduled_for=timezone.now(), trigger=JobRun.Trigger.MANUAL)
    run.save(force_insert=True)
    JobRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1), pid=1)

    assert runner.reap_lost_runs() == 1
    alerts.deliver_due()
    (body,) = bodies(webhook)
    assert body["event"] == "run.lost"
    assert body["run"]["id"] == run.pk and body["run"]["error"].startswith("process lost")


def test_a_leader_delivers_a_failed_tick_alert_off_the_run_thread(make_job, overrides, start_server, webhook):
    make_job(JOB, failing, every=1)
    overrides({})
    webhook.delay = 2.0  # a slow receiver holds up neither the loop nor the runs
    start_server()

    wait_until(lambda: webhook.requests, timeout=15, message="no alert reached the webhook")
    assert bodies(webhook)[0]["event"] == "run.failed"
    # Ticks kept running once a second while the receiver took 2 s per alert.
    first = JobRun.objects.filter(job_name=JOB).order_by("scheduled_for").first()
    assert first is not None
    wait_until(
        lambda: JobRun.objects.filter(job_name=JOB, status="failed").count() >= 4,
        timeout=10,
        message="ticks stalled behind the slow webhook",
    )


def test_a_run_abandoned_at_shutdown_raises_run_failed_once(make_job, overrides, start_server, webhook):
    release = threading.Event()

    def stubborn(ctx):
        release.wait(30)  # never looks at ctx

    make_job(JOB, stubborn, every=3600, timeout=120)
    overrides({JOB: {"interval": 1}})
    server = start_server()
    running = wait_until(
        lambda: JobRun.objects.filter(job_name=JOB, status="running").first(), timeout=15, message="no run"
    )
    try:
        server.stop(grace=0.5)
    finally:
        release.set()
    wait_until(lambda: JobRun.objects.get(pk=running.pk).active is False, timeout=10, message="still active")
    time.sleep(0.5)  # the handler's late return goes through the run's end hook too

    raised = AlertDelivery.objects.filter(job_name=JOB, run_id=running.pk)
    assert list(raised.values_list("event", flat=True)) == ["run.failed"]


def test_the_purge_job_deletes_alerts_sent_before_the_retention(webhook):
    alerts.raise_event(job_name=JOB, event=AlertDelivery.Event.JOB_OVERDUE, detail="old, sent")
    alerts.deliver_due()
    alerts.raise_event(job_name=JOB, event=AlertDelivery.Event.JOB_OVERDUE, detail="old, still pending")
    alerts.raise_event(job_name="tests.other", event=AlertDelivery.Event.JOB_OVERDUE, detail="recent")
    AlertDelivery.objects.filter(job_name=JOB).update(created_at=timezone.now() - timedelta(days=30))
    AlertDelivery.objects.filter(job_name=JOB, status="pending").update(next_attempt_at=timezone.now())

    services.job_runs_purge()
    left = sorted((d.job_name, d.status) for d in AlertDelivery.objects.all())
    assert left == [(JOB, "pending"), ("tests.other", "pending")]

"""Sentry Crons: the real sentry-sdk sends in_progress, then ok or error check-ins, for a monitor named
after the job with its schedule, to a local HTTP endpoint that records the envelopes."""

from __future__ import annotations

import gzip
import json

import pytest
import sentry_sdk

from stayy import services

pytestmark = pytest.mark.django_db(transaction=True)


def check_ins(receiver) -> list[dict]:
    found = []
    for request in receiver.requests:
        body = request.body
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        lines = body.split(b"\n")
        for header, payload in zip(lines[1::2], lines[2::2], strict=False):
            if json.loads(header).get("type") == "check_in":
                found.append(json.loads(payload))
    return found


@pytest.fixture
def sentry(receiver):
    port = receiver.url.split(":")[2].split("/")[0]
    sentry_sdk.init(
        dsn=f"http://public@127.0.0.1:{port}/1",
        default_integrations=False,
        send_client_reports=False,
        transport_queue_size=1000,
        _experiments={"transport_compression_algo": "gzip"},
    )
    yield receiver
    sentry_sdk.get_client().close(timeout=2)
    sentry_sdk.init()  # no DSN: off again


def test_each_run_checks_in_with_the_jobs_monitor_and_schedule(make_job, sentry):
    make_job("tests.watched", every=300, timeout=120, misfire_grace=90)
    services.job_run_in_process(name="tests.watched")
    sentry_sdk.flush(timeout=5)

    started, ended = check_ins(sentry)
    assert started["monitor_slug"] == "tests-watched" and started["status"] == "in_progress"
    assert started["monitor_config"] == {
        "schedule": {"type": "interval", "value": 5, "unit": "minute"},
        "timezone": "UTC",
        "checkin_margin": 2,
        "max_runtime": 2,
    }
    assert ended["status"] == "ok"
    assert ended["check_in_id"] == started["check_in_id"]
    assert ended["duration"] >= 0


def test_a_failing_crontab_job_checks_in_an_error(make_job, sentry):
    def failing(ctx):
        raise RuntimeError("nope")

    make_job("tests.nightly", failing, cron="30 3 * * *", timezone="Europe/Berlin")
    services.job_run_in_process(name="tests.nightly")
    sentry_sdk.flush(timeout=5)

    ours = [c for c in check_ins(sentry) if c["monitor_slug"] == "tests-nightly"]
    assert [c["status"] for c in ours] == ["in_progress", "error"]
    config = ours[0]["monitor_config"]
    assert config["schedule"] == {"type": "crontab", "value": "30 3 * * *"}
    assert config["timezone"] == "Europe/Berlin"

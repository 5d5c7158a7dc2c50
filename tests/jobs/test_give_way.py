"""Background work gives way to the requests its process serves (``stayy.runtime.activity``).

The requests here go through Django's whole handler and middleware stack in
this process (the test client), from other threads, as in a threaded worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import Client

from stayy.runtime import activity
from tests.jobs import give_way_urls
from tests.support import wait_until

pytestmark = pytest.mark.urls("tests.jobs.give_way_urls")


@pytest.fixture
def held_request() -> Iterator[threading.Event]:
    with give_way_urls.request_held() as release:
        yield release


def test_the_middleware_comes_first_so_that_it_counts_the_whole_request():
    assert settings.MIDDLEWARE[0] == "stayy.runtime.middleware.RequestActivityMiddleware"


def test_with_no_request_in_flight_nothing_waits():
    started = time.monotonic()

    assert activity.give_way(max_wait=5) is False
    assert time.monotonic() - started < 1


def test_it_waits_until_the_request_in_flight_ends(held_request):
    threading.Timer(0.3, held_request.set).start()
    started = time.monotonic()

    assert activity.give_way(max_wait=10) is True

    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 10
    wait_until(lambda: activity.requests_in_flight() == 0, timeout=10)


def test_it_waits_at_most_max_wait_and_counts_the_wait_for_its_thread(held_request):
    before = activity.waited_seconds()
    started = time.monotonic()

    assert activity.give_way(max_wait=0.2) is True

    elapsed = time.monotonic() - started
    assert 0.19 <= elapsed < 5
    assert activity.waited_seconds() - before == pytest.approx(elapsed, abs=0.05)
    assert activity.requests_in_flight() == 1


def test_a_request_thread_never_waits_on_requests(held_request):
    answer = Client().get("/gives-way/").json()

    assert answer["waited"] is False
    assert answer["seconds"] < 1


def test_a_failing_request_is_no_longer_counted():
    response = Client(raise_request_exception=False).get("/fails/")

    assert response.status_code == 500
    assert activity.requests_in_flight() == 0


def test_giving_way_asks_after_every_batch_of_items(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(activity, "give_way", lambda max_wait=None: calls.append(1) or False)

    items = list(activity.giving_way(range(120), every=50))

    assert items == list(range(120))
    assert len(calls) == 2

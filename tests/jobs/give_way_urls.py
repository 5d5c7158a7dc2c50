"""URLs for the give-way tests: a request that stays in flight until released, and one that gives way itself.

Use with ``@pytest.mark.urls("tests.jobs.give_way_urls")``; :func:`request_held`
keeps a request to ``held/`` in flight in another thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.http import HttpRequest, JsonResponse
from django.test import Client
from django.urls import path

from stayy.runtime import activity
from tests.support import wait_until

release = threading.Event()


def held(request: HttpRequest) -> JsonResponse:
    release.wait(30)
    return JsonResponse({"held": True})


def gives_way(request: HttpRequest) -> JsonResponse:
    started = time.monotonic()
    waited = activity.give_way(max_wait=5)
    return JsonResponse({"waited": waited, "seconds": time.monotonic() - started})


def fails(request: HttpRequest) -> JsonResponse:
    raise RuntimeError("boom")


urlpatterns = [
    path("held/", held),
    path("gives-way/", gives_way),
    path("fails/", fails),
]


@contextmanager
def request_held() -> Iterator[threading.Event]:
    """A request in flight in another thread until the event is set (set on leaving in any case)."""
    release.clear()
    answers: list[int] = []
    thread = threading.Thread(target=lambda: answers.append(Client().get("/held/").status_code))
    thread.start()
    try:
        wait_until(lambda: activity.requests_in_flight() == 1, timeout=10)
        yield release
    finally:
        release.set()
        thread.join(10)
    assert answers == [200]

"""The sync under each fault the demo upstream injects, over real HTTP, into real PostgreSQL.

Pages of 100 over the 500 demo users: five pages. A fault plan starting with
two ``ok`` faults hits the third page, after two pages were committed.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.upstream.conftest import DEMO_LIVE_USERS, DEMO_USERS
from users.models import User
from users.repository import cache, sync_state, upstream
from users.services import sync as sync_service

pytestmark = [pytest.mark.processes, pytest.mark.django_db]

PAGE_SIZE = 100
LIVE_PER_PAGE = PAGE_SIZE - PAGE_SIZE // 50
EVERY_LIVE_ID = {f"u{index:06d}" for index in range(1, DEMO_USERS + 1) if index % 50}
TWO_PAGES_OK = {"fault": "ok", "times": 2}


def sync(**options) -> dict[str, int]:
    options.setdefault("should_stop", lambda: False)
    options.setdefault("page_size", PAGE_SIZE)
    return sync_service.user_sync_from_upstream(**options)


def counts(**nonzero: int) -> dict[str, int]:
    return {key: nonzero.get(key, 0) for key in sync_service.SYNC_COUNTERS}


FULL_RUN = counts(pages=5, created=DEMO_LIVE_USERS, unchanged=DEMO_USERS - DEMO_LIVE_USERS)


def mirrored_ids() -> list[str]:
    return list(
        User.objects.filter(source=User.Source.THIRD_PARTY)
        .order_by("external_id")
        .values_list("external_id", flat=True)
    )


def next_id_after_stored_cursor() -> str:
    """The first upstream user the stored cursor has not covered yet."""
    stored = sync_state.get_cursor(sync_service.SYNC_CURSOR_NAME)
    return upstream.fetch_changes(cursor=stored, limit=1).users[0].id


@pytest.mark.parametrize(
    "fault",
    [
        {"fault": "error", "status": 500, "times": 3},
        {"fault": "error", "status": 503, "times": 2},
        {"fault": "throttle", "times": 3},
        {"fault": "throttle", "retry_after": "0", "times": 2},
        {"fault": "drop", "times": 3},
    ],
    ids=["500x3", "503x2", "429x3", "429-retry-after-0", "drop-connection"],
)
def test_a_transient_fault_mid_run_is_retried_and_the_run_completes(upstream_url, faults, fault):
    faults(TWO_PAGES_OK, fault)

    assert sync() == FULL_RUN
    assert mirrored_ids() == sorted(EVERY_LIVE_ID)
    assert faults.served() == {"ok": 2, fault["fault"]: fault["times"], "page": 3}


def test_a_slow_page_past_the_read_timeout_is_fetched_again(upstream_url, faults, settings):
    settings.THIRD_PARTY_USERS_READ_TIMEOUT = 0.3
    faults(TWO_PAGES_OK, {"fault": "slow", "seconds": 3})

    assert sync() == FULL_RUN
    assert faults.served() == {"ok": 2, "slow": 1, "page": 3}


def test_retry_after_is_honoured_between_pages(upstream_url, faults, settings):
    settings.THIRD_PARTY_USERS_BACKOFF_MAX = 30
    faults({"fault": "ok"}, {"fault": "throttle", "retry_after": 1})
    committed_at: list[float] = []

    assert sync(on_progress=lambda _counts: committed_at.append(time.monotonic())) == FULL_RUN

    # Page 2 came after the 429 and the second it asked for; far less than the 30 s cap.
    assert 1.0 <= committed_at[1] - committed_at[0] < 10
    assert faults.served() == {"ok": 1, "throttle": 1, "page": 4}


def test_after_the_last_retry_the_run_fails_and_keeps_the_committed_pages(upstream_url, faults):
    faults(TWO_PAGES_OK, {"fault": "error", "status": 502, "times": 4})

    with pytest.raises(upstream.UpstreamError, match=r"HTTP 502.*\(gave up after 4 attempts\)") as caught:
        sync()

    assert caught.value.status == 502
    assert faults.served() == {"ok": 2, "error": 4}
    assert len(mirrored_ids()) == 2 * LIVE_PER_PAGE
    assert next_id_after_stored_cursor() == f"u{2 * PAGE_SIZE + 1:06d}"

    faults()  # the upstream recovers
    assert sync() == counts(
        pages=3, created=DEMO_LIVE_USERS - 2 * LIVE_PER_PAGE, unchanged=3 * (PAGE_SIZE // 50)
    )
    assert mirrored_ids() == sorted(EVERY_LIVE_ID)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("truncate", "malformed page"),
        ("malformed", "users[0].id is not a non-empty string"),
    ],
)
def test_a_bad_page_fails_the_run_at_once_and_keeps_the_committed_pages(upstream_url, faults, fault, message):
    faults(TWO_PAGES_OK, {"fault": fault})

    with pytest.raises(upstream.UpstreamError) as caught:
        sync()

    assert message in str(caught.value)
    assert f"{upstream_url}/v1/users/changes?limit={PAGE_SIZE}&cursor=" in str(caught.value)
    assert faults.served() == {"ok": 2, fault: 1}, "a bad page is not fetched again"
    assert len(mirrored_ids()) == 2 * LIVE_PER_PAGE
    assert next_id_after_stored_cursor() == f"u{2 * PAGE_SIZE + 1:06d}"

    assert sync()["pages"] == 3
    assert mirrored_ids() == sorted(EVERY_LIVE_ID)


def test_a_stop_during_a_retry_wait_ends_the_run_promptly(upstream_url, faults, settings):
    settings.THIRD_PARTY_USERS_BACKOFF_MAX = 120
    faults({"fault": "ok"}, {"fault": "throttle", "retry_after": 60})
    stop = threading.Event()

    def after_each_page(progress: dict[str, int]) -> None:
        threading.Timer(0.3, stop.set).start()

    started = time.monotonic()
    result = sync(should_stop=stop.is_set, on_progress=after_each_page)

    assert time.monotonic() - started < 10  # not the 60 s the upstream asked for
    assert result == counts(pages=1, created=LIVE_PER_PAGE, unchanged=PAGE_SIZE // 50)
    assert next_id_after_stored_cursor() == f"u{PAGE_SIZE + 1:06d}"


# --- the cached stats ---

SENTINEL = {"total": -1, "active": -1, "inactive": 0, "by_source": {}, "new_last_24h": 0, "new_last_7d": 0}


def cached_total() -> int | None:
    stats = cache.stats_get()
    return None if stats is None else stats["total"]


def test_a_sync_that_changed_users_refreshes_the_cached_stats(upstream_url, touch):
    cache.stats_set(dict(SENTINEL), timeout=300)
    sync()
    assert cached_total() == User.objects.count() == DEMO_LIVE_USERS

    touch(ids=["u000001"], deleted=True)
    sync()
    stats = cache.stats_get()
    assert stats is not None
    assert (stats["active"], stats["inactive"]) == (DEMO_LIVE_USERS - 1, 1)


def test_a_sync_that_changed_nothing_leaves_the_cached_stats(upstream_url):
    sync()
    cache.stats_set(dict(SENTINEL), timeout=300)

    assert sync() == counts(pages=1)
    assert cached_total() == -1


def test_a_failed_sync_refreshes_the_stats_for_the_pages_it_committed(upstream_url, faults):
    cache.stats_set(dict(SENTINEL), timeout=300)
    faults(TWO_PAGES_OK, {"fault": "truncate"})

    with pytest.raises(upstream.UpstreamError):
        sync()

    assert cached_total() == 2 * LIVE_PER_PAGE

"""How the sync moves through the feed: the next page fetched while one is applied, two cursor
statements a page, the pause between pages (``THIRD_PARTY_USERS_SYNC_PAUSE``) that a stop ends,
and a faster email check that keeps Django's rules."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection
from django.test.utils import CaptureQueriesContext

from stayy.observability.logcontext import RunLog, bind_run
from stayy.runtime import activity
from stayy.scheduling import JobCancelled
from tests.jobs import give_way_urls
from tests.jobs.support import run_manage, run_rows, subprocess_env, wait_until
from tests.upstream.conftest import DEMO_LIVE_USERS, cancel_after_first_page, resize, sync_job_context
from users.jobs import sync_third_party_users
from users.models import SyncCursor, User
from users.repository import sync_state, upstream
from users.services import sync as sync_service, sync_records

pytestmark = [pytest.mark.processes, pytest.mark.django_db]

PAGE_SIZE = 100
PREFETCH_THREAD = "users-sync-prefetch"


def sync(**options) -> dict[str, int]:
    options.setdefault("should_stop", lambda: False)
    options.setdefault("page_size", PAGE_SIZE)
    return sync_service.user_sync_from_upstream(**options)


def prefetch_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(PREFETCH_THREAD)]


def mirrored() -> int:
    return User.objects.filter(source=User.Source.THIRD_PARTY).count()


def next_id_after_stored_cursor() -> str:
    stored = sync_state.get_cursor(sync_service.SYNC_CURSOR_NAME)
    return upstream.fetch_changes(cursor=stored, limit=1).users[0].id


# --- the next page is fetched while one is applied ---


def scripted_page(number: int, *, last: bool) -> tuple[int, str, bytes]:
    user = {
        "id": f"s{number}",
        "updated_at": "2026-01-01T00:00:00+00:00",
        "deleted": False,
        "email": f"s{number}@scripted.example",
        "display_name": f"Scripted {number}",
    }
    body = {"users": [user], "next_cursor": f"c{number}", "has_more": not last}
    return (200, "application/json", json.dumps(body).encode())


def test_the_next_page_is_requested_before_the_current_one_is_reported(scripted_upstream):
    scripted_upstream.script = [scripted_page(number, last=number == 3) for number in (1, 2, 3)]
    requests_when_reported: list[int] = []

    def on_progress(progress: dict[str, int]) -> None:
        if progress["pages"] == 1:
            # Without the prefetch the second request would only come after this returns.
            wait_until(lambda: len(scripted_upstream.requests) >= 2, timeout=10)
        requests_when_reported.append(len(scripted_upstream.requests))

    result = sync(on_progress=on_progress)

    assert result["pages"] == 3
    assert result["created"] == 3
    assert requests_when_reported[0] == 2
    assert len(scripted_upstream.requests) == 3
    cursors = [line.split("cursor=")[-1].split(" ")[0] for line in scripted_upstream.requests[1:]]
    assert cursors == ["c1", "c2"]
    assert sync_state.get_cursor(sync_service.SYNC_CURSOR_NAME) == "c3"
    assert not prefetch_threads()


def test_a_page_fetched_ahead_is_not_applied_after_a_stop_and_its_thread_ends(upstream_url, faults):
    faults(delay=0.3)  # the fetch of page 2 is still on the wire when page 1 commits
    progress: list[dict[str, int]] = []

    result = sync(should_stop=lambda: len(progress) >= 1, on_progress=progress.append)

    assert result["pages"] == 1
    assert not prefetch_threads()
    assert faults.served()["page"] == 2  # page 2 was fetched ahead, then dropped
    assert mirrored() == result["created"] > 0
    assert next_id_after_stored_cursor() == f"u{PAGE_SIZE + 1:06d}"


def test_a_failure_of_the_page_fetched_ahead_surfaces_after_the_pages_before_it(upstream_url, faults):
    faults({"fault": "ok"}, {"fault": "malformed"})

    with pytest.raises(upstream.UpstreamError, match="malformed page"):
        sync()

    assert next_id_after_stored_cursor() == f"u{PAGE_SIZE + 1:06d}"
    assert mirrored() == PAGE_SIZE - PAGE_SIZE // 50
    assert not prefetch_threads()


def test_a_retry_of_the_page_fetched_ahead_is_logged_in_the_run(upstream_url, faults):
    faults({"fault": "ok"}, {"fault": "error", "status": 503})
    log = RunLog(max_bytes=65536)

    with bind_run("users.sync_third_party_users", 4242, log=log):
        result = sync(page_size=250)

    assert result["pages"] == 2
    assert faults.served() == {"ok": 1, "error": 1, "page": 1}
    assert "returned HTTP 503" in log.text()
    assert "retrying in" in log.text()


# --- new mirrors are written as COPY text by hand ---


def test_new_mirrors_keep_every_character_copy_escapes(upstream_url, touch):
    name = "Tab\there, back\\slash, new\nline, return\r, \\N, Ünïcödé"
    touch(ids=["u000003"], display_name=name)

    sync()

    mirror = User.objects.get(external_id="u000003")
    assert mirror.display_name == name
    assert (mirror.username, mirror.email) == ("ext-u000003", "user000003@upstream.example")
    assert (mirror.source, mirror.is_active, mirror.is_staff, mirror.is_superuser) == (
        User.Source.THIRD_PARTY,
        True,
        False,
        False,
    )
    assert (mirror.first_name, mirror.last_name, mirror.last_login) == ("", "", None)
    assert not mirror.has_usable_password()
    assert mirror.created_at == mirror.updated_at == mirror.synced_at == mirror.date_joined


# --- the cursor costs two statements a page ---


def test_a_page_costs_one_lock_and_one_update_of_the_cursor(upstream_url, touch):
    sync()
    touch(ids=["u000007"], display_name="Changed")

    with CaptureQueriesContext(connection) as queries:
        result = sync()

    assert result["pages"] == 1
    cursor_table = SyncCursor._meta.db_table
    statements = [query["sql"] for query in queries.captured_queries if cursor_table in query["sql"]]
    assert len(statements) == 3, statements  # the read at the start, then the page's lock and update
    assert statements[1].rstrip().endswith("FOR UPDATE")
    assert statements[2].startswith(f'UPDATE "{cursor_table}"')


def test_the_first_page_ever_creates_the_cursor_row(upstream_url):
    assert not SyncCursor.objects.exists()

    sync(page_size=1000)

    row = SyncCursor.objects.get(name=sync_service.SYNC_CURSOR_NAME)
    assert row.cursor
    assert mirrored() == DEMO_LIVE_USERS


# --- the pause between pages ---


def test_the_sync_waits_between_pages_in_proportion_to_each_page(upstream_url):
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return False

    result = sync(pause=2.5, wait=wait)

    assert result["pages"] == 5
    assert len(waits) == 4  # between pages, not after the last one
    assert all(seconds > 0 for seconds in waits)
    assert mirrored() == DEMO_LIVE_USERS


def burn_cpu(seconds: float) -> None:
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def test_the_wait_counts_the_cpu_the_pages_checks_took_in_the_prefetch_thread(upstream_url, monkeypatch):
    check = sync_records.record_check

    def slow_check(record):  # 100 records: 0.2 s of checks a page, far above applying it
        burn_cpu(0.002)
        return check(record)

    monkeypatch.setattr(sync_records, "record_check", slow_check)
    waits: list[float] = []
    sync(pause=2.5, wait=lambda seconds: waits.append(seconds) or False)

    assert len(waits) == 4
    assert all(seconds >= 2.5 * PAGE_SIZE * 0.002 for seconds in waits), waits


def test_the_wait_counts_the_cpu_the_fetch_took_in_this_process(upstream_url, monkeypatch):
    fetch = upstream.fetch_changes

    def cpu_heavy_fetch(**options):  # 0.1 s of this thread's CPU a page, far above applying it
        page = fetch(**options)
        burn_cpu(0.1)
        return page

    monkeypatch.setattr(upstream, "fetch_changes", cpu_heavy_fetch)
    waits: list[float] = []
    sync(pause=2.5, wait=lambda seconds: waits.append(seconds) or False)

    assert len(waits) == 4
    assert all(seconds >= 2.5 * 0.1 for seconds in waits), waits


def test_the_wait_does_not_count_the_time_the_upstream_took_to_answer(upstream_url, faults):
    faults(delay=0.3)  # every page: 0.3 s on the wire, no CPU here
    waits: list[float] = []

    sync(pause=2.5, wait=lambda seconds: waits.append(seconds) or False)

    assert len(waits) == 4
    # Counting the upstream's 0.3 s would make every wait at least 2.5 x 0.3 s.
    assert all(seconds < 2.5 * 0.3 for seconds in waits), waits


@pytest.mark.urls("tests.jobs.give_way_urls")
def test_the_sync_gives_way_to_a_request_in_flight_and_its_pauses_leave_that_time_out(
    upstream_url, monkeypatch
):
    monkeypatch.setattr(activity, "MAX_WAIT", 0.1)
    waits: list[float] = []
    waited = activity.waited_seconds()

    with give_way_urls.request_held():
        result = sync(
            pause=2.5, wait=lambda seconds: waits.append(seconds) or False, give_way=activity.give_way
        )
        gave_way = activity.waited_seconds() - waited

    assert result["pages"] == 5
    assert mirrored() == DEMO_LIVE_USERS
    # Here, at least two batches of 50 records a page (its decisions) waited 0.1 s each.
    assert gave_way >= 5 * 2 * 0.1
    # Counted, that time would make each pause at least 2.5 x 0.2 s.
    assert all(seconds < 2.5 * 0.1 for seconds in waits), waits


def test_without_a_pause_the_sync_never_waits(upstream_url):
    waits: list[float] = []

    sync(pause=0, wait=lambda seconds: waits.append(seconds) or False)

    assert waits == []


def test_a_wait_that_reports_a_stop_ends_the_run_after_its_page(upstream_url):
    result = sync(pause=1, wait=lambda seconds: True)

    assert result["pages"] == 1
    assert next_id_after_stored_cursor() == f"u{PAGE_SIZE + 1:06d}"
    assert not prefetch_threads()


def test_a_stop_ends_the_default_wait_promptly(upstream_url):
    stop = threading.Event()

    def stop_soon(progress: dict[str, int]) -> None:
        threading.Timer(0.3, stop.set).start()

    started = time.monotonic()
    result = sync(pause=100_000, should_stop=stop.is_set, on_progress=stop_soon)

    assert time.monotonic() - started < 10  # not 100,000 times the page's time
    assert result["pages"] == 1


def test_a_negative_pause_is_refused():
    with pytest.raises(ValueError, match="pause"):
        sync_service.user_sync_from_upstream(should_stop=lambda: False, pause=-1)


# --- the email check: Django's rules, cheaper ---

ADDRESSES = [
    "ann@example.com",
    "Ann.Lee+tag@Sub.Example.ORG",
    "a@localhost",
    "a@[127.0.0.1]",
    "a@[::1]",
    "a@[999.1.1.1]",
    '"quoted name"@example.com',
    "a@b",
    "a@-example.com",
    "a@exa_mple.com",
    "a..b@example.com",
    "a b@example.com",
    "a@bücher.example",
    "\u212aelvin@example.com",
    "no-at-sign",
    "@example.com",
    "a@",
    "x" * 310 + "@example.com",
    "a@" + "b" * 64 + ".com",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_the_sync_email_check_agrees_with_djangos(address):
    def verdict(check) -> bool:
        try:
            check(address)
        except ValidationError:
            return False
        return True

    # Twice: the second answer comes from the kept domain verdicts.
    assert verdict(sync_records.validate_email) == verdict(validate_email)
    assert verdict(sync_records.validate_email) == verdict(validate_email)


# --- the job: THIRD_PARTY_USERS_SYNC_PAUSE through the context's cooperative sleep ---


@pytest.fixture
def serving_process(client):
    """This process serves HTTP: a request went through the app's handler (its middleware loaded)."""
    assert client.get("/healthz").status_code == 200
    assert activity.serves_requests()


def test_the_job_pauses_between_pages_with_the_context_sleep(upstream_url, settings, serving_process):
    settings.THIRD_PARTY_USERS_SYNC_PAUSE = 0.5
    resize(upstream_url, 1200)
    ctx = sync_job_context()
    slept: list[float] = []
    original = ctx.sleep

    def recording_sleep(seconds: float) -> bool:
        slept.append(seconds)
        return original(seconds)

    ctx.sleep = recording_sleep  # type: ignore[method-assign]

    result = sync_third_party_users(ctx)

    assert result["pages"] == 3
    assert len(slept) == 2
    assert all(seconds > 0 for seconds in slept)


def test_a_cancel_ends_the_jobs_pause_at_once(upstream_url, settings, serving_process):
    settings.THIRD_PARTY_USERS_SYNC_PAUSE = 100_000
    resize(upstream_url, 1200)
    ctx = sync_job_context()
    cancel_after_first_page(ctx)
    started = time.monotonic()

    with pytest.raises(JobCancelled, match="shutdown"):
        sync_third_party_users(ctx)

    assert time.monotonic() - started < 10
    assert ctx.summary["pages"] == 1
    assert not prefetch_threads()


@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_runjobs_run_serves_no_requests_and_never_pauses(upstream_url, settings):
    resize(upstream_url, 1200)
    env = subprocess_env(THIRD_PARTY_USERS_URL=upstream_url, THIRD_PARTY_USERS_SYNC_PAUSE="100000")

    result = run_manage("runjobs", "--run", "users.sync_third_party_users", env=env, timeout=90)

    # A pause of 100,000 times a page's cost after page 1 would outlast the timeout by far.
    assert result.returncode == 0, result.stderr
    (run,) = run_rows(job_name="users.sync_third_party_users")
    assert run.summary["pages"] == 3

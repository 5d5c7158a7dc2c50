"""The sync from the third-party user service, end to end: the demo process, the client, PostgreSQL."""

from __future__ import annotations

import logging
from datetime import datetime

import psycopg
import pytest
from django.db import IntegrityError, connection

from tests.upstream.conftest import DEMO_LIVE_USERS, DEMO_USERS, HTTP
from users.models import SyncCursor, User
from users.repository import sync_state, upstream
from users.services import sync as sync_service

pytestmark = [pytest.mark.processes, pytest.mark.django_db]

PAGE_SIZE = 100
TOMBSTONES_PER_PAGE = PAGE_SIZE // 50


def sync(**options) -> dict[str, int]:
    options.setdefault("should_stop", lambda: False)
    options.setdefault("page_size", PAGE_SIZE)
    return sync_service.user_sync_from_upstream(**options)


def counts(*, rejects: tuple[tuple[str, str], ...] = (), **nonzero: int) -> dict[str, object]:
    """A run's summary: the counters, and the rejected records' ids and reasons if any."""
    summary: dict[str, object] = {key: nonzero.get(key, 0) for key in sync_service.SYNC_COUNTERS}
    if rejects:
        summary["rejects"] = [{"id": external_id, "reason": reason} for external_id, reason in rejects]
    return summary


LOCAL_ID = "its external_id belongs to a local user"


def mirror_stamps() -> dict[str, tuple[datetime, datetime | None]]:
    rows = User.objects.filter(source=User.Source.THIRD_PARTY).values_list(
        "external_id", "updated_at", "synced_at"
    )
    return {str(external_id): (updated_at, synced_at) for external_id, updated_at, synced_at in rows}


def mirror(external_id: str) -> User:
    return User.objects.get(external_id=external_id, source=User.Source.THIRD_PARTY)


def test_the_first_sync_mirrors_every_live_user(upstream_url):
    progress: list[dict[str, int]] = []

    result = sync(on_progress=progress.append)

    assert result == counts(pages=5, created=DEMO_LIVE_USERS, unchanged=DEMO_USERS - DEMO_LIVE_USERS)
    assert [report["pages"] for report in progress] == [1, 2, 3, 4, 5]
    assert progress[0] == counts(
        pages=1, created=PAGE_SIZE - TOMBSTONES_PER_PAGE, unchanged=TOMBSTONES_PER_PAGE
    )
    assert progress[-1] == result
    assert User.objects.filter(source=User.Source.THIRD_PARTY, is_active=True).count() == DEMO_LIVE_USERS
    first = mirror("u000001")
    assert (first.username, first.email, first.display_name) == (
        "ext-u000001",
        "user000001@upstream.example",
        "User 000001",
    )
    assert not first.has_usable_password()
    assert first.synced_at is not None
    assert not User.objects.filter(external_id="u000050").exists()
    end = HTTP.get(f"{upstream_url}/v1/users/changes", params={"limit": 1000}).json()["next_cursor"]
    assert sync_state.get_cursor(sync_service.SYNC_CURSOR_NAME) == end


def test_a_second_sync_fetches_nothing_and_writes_nothing(upstream_url):
    sync()
    before = mirror_stamps()

    assert sync() == counts(pages=1)
    assert mirror_stamps() == before


def test_a_full_resync_does_not_write_unchanged_users(upstream_url):
    sync()
    before = mirror_stamps()
    sync_state.save_cursor(sync_service.SYNC_CURSOR_NAME, "")

    assert sync() == counts(pages=5, unchanged=DEMO_USERS)
    assert mirror_stamps() == before


def test_an_incremental_sync_updates_exactly_the_touched_users(upstream_url, touch):
    sync()
    before = mirror_stamps()
    touched = touch(share=0.01, seed=3)

    result = sync()

    assert len(touched) == round(DEMO_LIVE_USERS * 0.01)
    assert result == counts(pages=1, updated=len(touched))
    after = mirror_stamps()
    assert {key for key in after if after[key] != before[key]} == set(touched)
    assert {mirror(key).display_name for key in touched} == {f"User {key[1:]} (rev 1)" for key in touched}


def test_tombstones_deactivate_mirrors_and_a_restore_reactivates_them(upstream_url, touch):
    sync()
    touch(ids=["u000003", "u000004"], deleted=True)

    assert sync() == counts(pages=1, deactivated=2)
    deactivated = mirror("u000003")
    assert not deactivated.is_active
    assert (deactivated.email, deactivated.display_name) == ("user000003@upstream.example", "User 000003")
    assert not mirror("u000004").is_active

    touch(ids=["u000004"], deleted=True)
    touch(ids=["u000003"], deleted=False)

    assert sync() == counts(pages=1, updated=1, unchanged=1)
    restored = mirror("u000003")
    assert restored.is_active
    assert restored.display_name == "User 000003 (rev 2)"


def test_local_users_are_never_touched(upstream_url, touch, caplog):
    local = [
        # The same address as u000007, differing in case only.
        User.objects.create_user(username="ann", email="User000007@upstream.example", display_name="Ann"),
        User.objects.create_user(username="bob", email="bob@example.com", external_id="u000009"),
        User.objects.create_user(username="ext-u000011", email="carl@example.com"),
    ]
    snapshot = list(User.objects.filter(source=User.Source.LOCAL).order_by("pk").values())
    caplog.set_level(logging.WARNING, logger="users.sync")

    result = sync()

    assert result == counts(
        pages=5,
        created=DEMO_LIVE_USERS - 3,
        unchanged=DEMO_USERS - DEMO_LIVE_USERS,
        rejected=3,
        rejects=(
            ("u000007", "its email is used by another user"),
            ("u000009", LOCAL_ID),
            ("u000011", "username ext-u000011 is used by another user"),
        ),
    )
    assert list(User.objects.filter(source=User.Source.LOCAL).order_by("pk").values()) == snapshot
    assert list(User.objects.filter(external_id__in=["u000007", "u000009", "u000011"])) == [local[1]]
    rejected = [record.getMessage() for record in caplog.records if "rejected" in record.getMessage()]
    assert rejected == [
        "upstream user u000007 rejected: its email is used by another user",
        "upstream user u000009 rejected: its external_id belongs to a local user",
        "upstream user u000011 rejected: username ext-u000011 is used by another user",
    ]

    touch(ids=["u000009"], deleted=True)
    assert sync() == counts(pages=1, rejected=1, rejects=(("u000009", LOCAL_ID),))
    assert list(User.objects.filter(source=User.Source.LOCAL).order_by("pk").values()) == snapshot


def test_bad_records_are_counted_and_leave_the_mirror_as_it_was(upstream_url, touch):
    touch(ids=["u000005"], email="not-an-email")
    assert sync() == counts(
        pages=5,
        created=DEMO_LIVE_USERS - 1,
        unchanged=DEMO_USERS - DEMO_LIVE_USERS,
        rejected=1,
        rejects=(("u000005", "invalid email"),),
    )
    assert not User.objects.filter(external_id="u000005").exists()

    touch(ids=["u000006"], email="USER000008@upstream.example")
    touch(ids=["u000012"], email="")

    assert sync() == counts(
        pages=1,
        rejected=2,
        rejects=(("u000006", "its email is used by another user"), ("u000012", "no email")),
    )
    assert (mirror("u000006").email, mirror("u000006").display_name) == (
        "user000006@upstream.example",
        "User 000006",
    )
    assert mirror("u000012").email == "user000012@upstream.example"


def test_an_email_freed_earlier_in_a_page_can_be_taken_later_in_it(upstream_url, touch):
    sync()
    touch(ids=["u000013"], email="new13@upstream.example")
    touch(ids=["u000012"], email="user000013@upstream.example")

    assert sync() == counts(pages=1, updated=2)
    assert mirror("u000013").email == "new13@upstream.example"
    assert mirror("u000012").email == "user000013@upstream.example"


def test_stopping_between_pages_keeps_the_committed_pages_and_the_next_run_continues(upstream_url):
    progress: list[dict[str, int]] = []

    first = sync(should_stop=lambda: len(progress) >= 2, on_progress=progress.append)

    committed = 2 * (PAGE_SIZE - TOMBSTONES_PER_PAGE)
    assert first == counts(pages=2, created=committed, unchanged=2 * TOMBSTONES_PER_PAGE)
    assert User.objects.filter(source=User.Source.THIRD_PARTY).count() == committed
    stored = sync_state.get_cursor(sync_service.SYNC_CURSOR_NAME)
    assert upstream.fetch_changes(cursor=stored, limit=1).users[0].id == f"u{2 * PAGE_SIZE + 1:06d}"

    second = sync()

    assert second == counts(pages=3, created=DEMO_LIVE_USERS - committed, unchanged=3 * TOMBSTONES_PER_PAGE)
    expected = {f"u{index:06d}" for index in range(1, DEMO_USERS + 1) if index % 50}
    assert set(mirror_stamps()) == expected


def test_a_stop_before_the_first_page_fetches_nothing(upstream_url):
    assert sync(should_stop=lambda: True) == counts()
    assert not SyncCursor.objects.exists()


def test_a_failing_page_rolls_back_together_with_its_cursor(upstream_url):
    # A real database error in the middle of page 2: a constraint (undone with
    # the test's transaction) that one of its users breaks.
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {User._meta.db_table} ADD CONSTRAINT test_refuse_u000151"
            " CHECK (external_id IS NULL OR external_id <> 'u000151')"
        )

    # Django's IntegrityError, or psycopg's own where the page is written with COPY.
    with pytest.raises((IntegrityError, psycopg.errors.IntegrityError), match="test_refuse_u000151"):
        sync()

    assert User.objects.filter(source=User.Source.THIRD_PARTY).count() == PAGE_SIZE - TOMBSTONES_PER_PAGE
    stored = sync_state.get_cursor(sync_service.SYNC_CURSOR_NAME)
    assert upstream.fetch_changes(cursor=stored, limit=1).users[0].id == f"u{PAGE_SIZE + 1:06d}"


def test_a_page_is_not_applied_when_another_sync_moved_the_cursor(upstream_url, monkeypatch):
    original = upstream.fetch_changes

    def fetch_while_another_sync_commits(**options):
        page = original(**options)
        sync_state.save_cursor(sync_service.SYNC_CURSOR_NAME, page.next_cursor)
        return page

    monkeypatch.setattr(upstream, "fetch_changes", fetch_while_another_sync_commits)

    assert sync() == counts()
    assert not User.objects.filter(source=User.Source.THIRD_PARTY).exists()


def test_an_upstream_failure_stops_the_sync_after_the_committed_pages(upstream_url, settings):
    sync()
    settings.THIRD_PARTY_USERS_URL = f"{upstream_url}/missing-prefix"

    with pytest.raises(upstream.UpstreamError, match="HTTP 404"):
        sync()
    assert User.objects.filter(source=User.Source.THIRD_PARTY).count() == DEMO_LIVE_USERS


def test_an_oversized_display_name_is_rejected_and_logged_with_the_upstream_id(upstream_url, touch, caplog):
    sync()
    touch(ids=["u000002"], display_name="x" * 151)
    touch(ids=["u000003"], display_name="y" * 150)
    caplog.set_level(logging.WARNING, logger="users.sync")

    assert sync() == counts(
        pages=1, updated=1, rejected=1, rejects=(("u000002", "display_name longer than 150 characters"),)
    )
    assert mirror("u000002").display_name == "User 000002"
    assert mirror("u000003").display_name == "y" * 150
    assert [record.getMessage() for record in caplog.records if " rejected: " in record.getMessage()] == [
        "upstream user u000002 rejected: display_name longer than 150 characters"
    ]


def test_replaying_pages_from_an_older_cursor_writes_nothing(upstream_url, touch):
    progress: list[dict[str, int]] = []
    sync(should_stop=lambda: len(progress) >= 2, on_progress=progress.append)
    older = sync_state.get_cursor(sync_service.SYNC_CURSOR_NAME)
    sync()
    touch(ids=["u000401"])
    sync()
    before = mirror_stamps()
    sync_state.save_cursor(sync_service.SYNC_CURSOR_NAME, older)

    # Pages 3 to 5 again (the touched user now at their end), all as they are here already.
    assert sync() == counts(pages=3, unchanged=3 * PAGE_SIZE)
    assert mirror_stamps() == before

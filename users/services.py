"""Business logic of the users domain, shared by the REST API, the jobs and the commands.

Functions are keyword-only and named ``<entity>_<action>``. They raise Django's
``ValidationError`` (keyed by field) for bad input; each interface turns it
into its own error form. All I/O goes through :mod:`users.repository`.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict, cast

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from stayy.runtime import activity
from users.models import User
from users.repository import cache, db, sync_db, sync_state, upstream

# The refresh job runs every 30 s; four intervals of slack mean a late or
# skipped tick does not turn every request into a query, while with jobs
# switched off the numbers are never more than two minutes old.
STATS_CACHE_SECONDS = 120

EMAIL_TAKEN = "A user with this email address already exists."
USERNAME_TAKEN = "A user with this username already exists."


class UserStats(TypedDict):
    total: int
    active: int
    inactive: int
    by_source: dict[str, int]
    new_last_24h: int
    new_last_7d: int
    computed_at: datetime


def user_list() -> QuerySet[User]:
    """All users, for the API to filter, search, order and paginate."""
    return db.user_queryset()


def user_get(*, user_id: int) -> User | None:
    return db.user_by_id(user_id)


def _check_email_free(email: str, *, exclude_id: int | None = None) -> None:
    if db.email_taken(email, exclude_id=exclude_id):
        raise ValidationError({"email": [EMAIL_TAKEN]})


def _raise_for_taken(*, email: str, username: str | None, exclude_id: int | None) -> None:
    """Turn a unique-constraint race (the pre-check passed, the insert failed) into a field error."""
    _check_email_free(email, exclude_id=exclude_id)
    if username is not None and db.username_taken(username):
        raise ValidationError({"username": [USERNAME_TAKEN]})


def user_create(
    *,
    username: str,
    email: str,
    password: str | None = None,
    display_name: str = "",
    is_staff: bool = False,
) -> User:
    """Create a local user; without a password the user cannot sign in until one is set."""
    email = User.objects.normalize_email(email)
    _check_email_free(email)
    if db.username_taken(username):
        raise ValidationError({"username": [USERNAME_TAKEN]})
    if password is not None:
        try:
            validate_password(password, user=User(username=username, email=email, display_name=display_name))
        except ValidationError as exc:
            raise ValidationError({"password": exc.messages}) from None
    try:
        with transaction.atomic():
            return db.user_insert(
                username=username,
                email=email,
                password=password,
                display_name=display_name,
                is_staff=is_staff,
            )
    except IntegrityError:
        _raise_for_taken(email=email, username=username, exclude_id=None)
        raise


def user_update(
    *,
    user: User,
    email: str | None = None,
    display_name: str | None = None,
    is_active: bool | None = None,
    is_staff: bool | None = None,
) -> User:
    """Change the given fields (``None`` leaves a field as it is) and save only those."""
    changes: dict[str, Any] = {}
    if email is not None:
        email = User.objects.normalize_email(email)
        if email != user.email:
            _check_email_free(email, exclude_id=user.pk)
            changes["email"] = email
    for field, value in (("display_name", display_name), ("is_active", is_active), ("is_staff", is_staff)):
        if value is not None and value != getattr(user, field):
            changes[field] = value
    if not changes:
        return user
    for field, value in changes.items():
        setattr(user, field, value)
    try:
        with transaction.atomic():
            db.user_save(user, fields=list(changes))
    except IntegrityError:
        _raise_for_taken(email=user.email, username=None, exclude_id=user.pk)
        raise
    return user


def user_profile_update(*, user: User, email: str | None = None, display_name: str | None = None) -> User:
    """Self-service edit: people may change how they are named and reached, never their rights."""
    return user_update(user=user, email=email, display_name=display_name)


def user_deactivate(*, user: User) -> User:
    """Switch the account off; the row stays so history and upstream mirroring keep their references."""
    return user_update(user=user, is_active=False)


def user_ensure_superuser(*, username: str, email: str, password: str) -> tuple[User, bool]:
    """The superuser ``username``, created if missing (an existing one is left untouched)."""
    return db.superuser_get_or_create(username=username, email=email, password=password)


def auth_token_obtain(*, user: User) -> str:
    """The user's API token, created on first use."""
    return db.auth_token_for(user)


def auth_token_revoke(*, key: str) -> None:
    """Revoke an API token at once (the caller signs out wherever it was used)."""
    db.auth_token_delete(key)


def user_stats_compute(*, now: datetime | None = None) -> UserStats:
    """Count users (total, active, per source, new ones) with one aggregate query."""
    now = now or timezone.now()
    counts = db.user_counts(day_ago=now - timedelta(days=1), week_ago=now - timedelta(days=7))
    return {
        "total": counts["total"],
        "active": counts["active"],
        "inactive": counts["total"] - counts["active"],
        "by_source": {value: counts[f"source_{value}"] for value in User.Source.values},
        "new_last_24h": counts["new_last_24h"],
        "new_last_7d": counts["new_last_7d"],
        "computed_at": now,
    }


def user_stats_refresh() -> UserStats:
    """Compute the stats and store them in the cache (a cache outage only loses the store)."""
    stats = user_stats_compute()
    cache.stats_set(dict(stats), timeout=STATS_CACHE_SECONDS)
    return stats


def user_stats_get() -> UserStats:
    """The cached stats; on a miss (or with the cache down) computed and stored now."""
    cached = cache.stats_get()
    if cached is not None:
        return cast(UserStats, cached)
    return user_stats_refresh()


# --- Sync from the third-party user service ---

# The imports of this part sit here so that the two parts of the file can be
# edited independently; the lead may hoist them to the top.


sync_logger = logging.getLogger("users.sync")

SYNC_CURSOR_NAME = "users.third_party"
SYNC_COUNTERS = ("pages", "created", "updated", "unchanged", "deactivated", "rejected")
_EXTERNAL_ID_MAX = User._meta.get_field("external_id").max_length or 64
_EMAIL_MAX = User._meta.get_field("email").max_length or 254
_DISPLAY_NAME_MAX = User._meta.get_field("display_name").max_length or 150


@functools.lru_cache(maxsize=4096)
def _email_domain_valid(domain: str) -> bool:
    return EmailValidator().validate_domain_part(domain)


class _SyncEmailValidator(EmailValidator):
    """Django's ``validate_email``, rule for rule, at a fraction of the cost for a page of records.

    Its lazily compiled user regex is compiled once here (the lazy proxy cost
    two attribute lookups per call), and each domain's verdict is kept (a feed
    repeats few domains). The domain check took half of the validation, and
    the validation a sixth of a first sync's time in this process (profiled).
    """

    user_regex = re.compile(EmailValidator.user_regex.pattern, EmailValidator.user_regex.flags)

    def validate_domain_part(self, domain_part: str) -> bool:
        return _email_domain_valid(domain_part)


_sync_validate_email = _SyncEmailValidator()


def user_sync_configured() -> bool:
    """Whether a third-party user service is configured to sync from."""
    return bool(settings.THIRD_PARTY_USERS_URL)


def user_sync_username(*, external_id: str) -> str:
    """The username of the mirror of an upstream user (the ``ext-`` prefix keeps it apart from local ones)."""
    return f"ext-{external_id}"


def user_sync_from_upstream(
    *,
    should_stop: Callable[[], bool],
    on_progress: Callable[[dict[str, int]], None] | None = None,
    page_size: int = 500,
    pause: float = 0.0,
    wait: Callable[[float], bool] | None = None,
) -> dict[str, int]:
    """Apply the upstream change feed from the stored cursor on, one page per transaction.

    Each page's changes and its ``next_cursor`` commit together, so stopping
    (``should_stop()`` is asked before every page and during the client's
    retry waits) or failing between pages loses and repeats nothing. Without
    a pause, the next page is fetched while the current one is applied (its
    cursor is known as soon as a page arrives); a page fetched after a stop
    is never applied.
    Returns the counters also passed to ``on_progress`` after every page:
    pages, created, updated, unchanged, deactivated, rejected. When any user
    was created, updated or deactivated, the cached user stats are refreshed,
    also if the run stops or fails after such a page; when any was updated,
    the users table is vacuumed first (on PostgreSQL, outside a transaction,
    unless the run is stopping). See docs/upstream.md for
    the rules per record.

    ``pause`` yields between pages: after a page that more pages follow, the
    sync waits ``pause`` times the page's cost (0: never): the CPU this
    process spent fetching and checking it (not the wait for the upstream's
    answer) and the time applying it took (PostgreSQL's included), so that
    the sync keeps this process and the database busy at most
    ``1 / (1 + pause)`` of the time; with a pause, the next page is fetched
    during it. The wait is ``wait(seconds)``, which returns ``True`` to stop
    the run (the job's ``ctx.sleep``); without one, a sleep that asks
    ``should_stop()`` every 50 ms.

    Its loops over a page's records give way to the requests this process
    serves (:mod:`stayy.runtime.activity`): in a web worker, its Python waits
    while a request is in flight.
    """
    if not 1 <= page_size <= 1000:
        raise ValueError(f"page_size must be from 1 to 1000 (the upstream maximum), got {page_size}")
    if pause < 0:
        raise ValueError(f"pause must be 0 or more, got {pause}")
    counts = dict.fromkeys(SYNC_COUNTERS, 0)
    try:
        _sync_pages(
            counts,
            should_stop=should_stop,
            on_progress=on_progress,
            page_size=page_size,
            pause=pause,
            wait=wait or _sleep_unless_stopped(should_stop),
        )
    finally:
        if counts["updated"] and not should_stop():  # a stopping run leaves it to the next one
            _sync_vacuum()
        if counts["created"] or counts["updated"] or counts["deactivated"]:
            _sync_refresh_stats()
    sync_logger.info("upstream sync: %s", ", ".join(f"{key}={value}" for key, value in counts.items()))
    return counts


def _sleep_unless_stopped(should_stop: Callable[[], bool]) -> Callable[[float], bool]:
    """A ``wait(seconds)`` that ends early, returning ``True``, once ``should_stop()`` is true."""

    def wait(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not should_stop():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, upstream.STOP_POLL_SECONDS))
        return True

    return wait


def _sync_pages(
    counts: dict[str, int],
    *,
    should_stop: Callable[[], bool],
    on_progress: Callable[[dict[str, int]], None] | None,
    page_size: int,
    pause: float,
    wait: Callable[[float], bool],
) -> None:
    """The page loop of :func:`user_sync_from_upstream`; adds to ``counts`` as pages commit.

    The first page is fetched here; each next one by one worker thread while
    this one applies the current page, or, with a ``pause``, during the pause
    after it (the client is thread-safe; the worker
    touches no database, and runs in a copy of this thread's context
    variables, so its log lines belong to the same job run). The worker also
    checks the page's records (:func:`_sync_fetch`), so that this thread's
    waits for PostgreSQL are spent on the next page. The worker
    starts only after the page's cursor check passed, and is told to give up
    (its retry waits end) and joined before this returns, whatever ends the
    loop; its page or error is used only where the page would have been
    fetched without it.
    """
    cursor = sync_state.get_cursor(SYNC_CURSOR_NAME)
    abandoned = threading.Event()

    def prefetch_should_stop() -> bool:
        return abandoned.is_set() or should_stop()

    pending: Future[_CheckedPage] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="users-sync-prefetch") as prefetcher:

        def prefetch(next_cursor: str) -> Future[_CheckedPage]:
            # In a copy of this thread's context: what the worker logs
            # (retries) carries and lands in the job run's log.
            return prefetcher.submit(
                contextvars.copy_context().run,
                _sync_fetch,
                cursor=next_cursor,
                limit=page_size,
                should_stop=prefetch_should_stop,
            )

        try:
            while not should_stop():
                try:
                    if pending is not None:
                        checked = pending.result()
                    else:
                        checked = _sync_fetch(cursor=cursor, limit=page_size, should_stop=should_stop)
                except upstream.UpstreamStopped:
                    break
                pending = None
                page = checked.page
                started, waited = time.monotonic(), activity.waited_seconds()
                with transaction.atomic():
                    if sync_state.lock_cursor(SYNC_CURSOR_NAME) != cursor:
                        sync_logger.warning("upstream sync: the cursor was moved by another sync; stopping")
                        break
                    if page.has_more and page.users and not pause:
                        pending = prefetch(page.next_cursor)
                    page_counts = _sync_page(checked, now=timezone.now())
                    if page.next_cursor != cursor:
                        sync_state.advance_cursor(SYNC_CURSOR_NAME, page.next_cursor)
                    if not page.has_more and counts["updated"] + page_counts["updated"]:
                        sync_db.page_commit_durably()  # for the vacuum after the run
                # PostgreSQL's time counts (its work for this page); giving way does not.
                applied = time.monotonic() - started - (activity.waited_seconds() - waited)
                cursor = page.next_cursor
                counts["pages"] += 1
                for outcome, number in page_counts.items():
                    counts[outcome] += number
                if on_progress is not None:
                    on_progress(dict(counts))
                if not page.has_more:
                    break
                if not page.users:
                    # Following "has_more" past an empty page would ask for the same page forever.
                    sync_logger.warning(
                        "upstream sync: empty page with has_more=true; stopping until the next run"
                    )
                    break
                if pause:
                    # Paced, the next page is fetched during the pause, not while
                    # this one was applied: the sync keeps one core busy, not two.
                    pending = prefetch(page.next_cursor)
                    if wait(pause * (checked.cost_seconds + applied)):
                        break
        finally:
            # Ends the worker's retry waits; leaving the with-block joins it.
            abandoned.set()
            if pending is not None:
                pending.cancel()


def _sync_vacuum() -> None:
    """Vacuum the users table after a sync updated users, so that the list's count stays index-only
    (:func:`users.repository.sync_db.mirrors_vacuum`); a failure here must not hide the sync's own."""
    started = time.monotonic()
    try:
        vacuumed = sync_db.mirrors_vacuum()
    except Exception:
        sync_logger.exception("upstream sync: the users table was not vacuumed")
        return
    if vacuumed:
        took_ms = (time.monotonic() - started) * 1000
        sync_logger.info("upstream sync: users table vacuumed in %.0f ms", took_ms)


def _sync_refresh_stats() -> None:
    """Refresh the cached stats after a sync changed users; a failure here must not hide the sync's own."""
    try:
        user_stats_refresh()
    except Exception:
        sync_logger.exception("upstream sync: the user stats were not refreshed")


@dataclass(frozen=True)
class _CheckedRecord:
    """What a live record's own fields decide, worked out without the database."""

    #: Why the record cannot be mirrored, or "".
    problem: str
    #: The normalized email ("" with a problem), and its lower-cased form.
    email: str
    email_key: str


@dataclass(frozen=True)
class _CheckedPage:
    """A page of the feed with its records checked and its lookup keys built."""

    page: upstream.ChangesPage
    #: The feed lists each user once, at its latest change; should a page
    #: repeat an id anyway, its later item is the one that counts.
    latest: dict[str, upstream.UpstreamUser]
    #: Live records only (a tombstone needs no check).
    checks: dict[str, _CheckedRecord]
    emails: set[str]
    #: For every id (a superset of the ones without a mirror), so that the
    #: page's whole state comes in one round trip.
    usernames: list[str]
    #: The page's cost before it is applied, whichever thread paid it: the
    #: CPU this process spent fetching and checking it (a wait for the
    #: upstream's answer, or to give way to requests, costs nothing here).
    cost_seconds: float


def _sync_fetch(*, cursor: str, limit: int, should_stop: Callable[[], bool]) -> _CheckedPage:
    """Fetch a page and check its records (no database: the prefetch worker runs this)."""
    cpu_started = time.thread_time()
    page = upstream.fetch_changes(cursor=cursor, limit=limit, should_stop=should_stop)
    latest = {record.id: record for record in page.users}
    checks = {
        key: _sync_check(record) for key, record in activity.giving_way(latest.items()) if not record.deleted
    }
    return _CheckedPage(
        page=page,
        latest=latest,
        checks=checks,
        emails={record.email.lower() for record in latest.values() if record.email},
        usernames=[user_sync_username(external_id=external_id) for external_id in latest],
        cost_seconds=time.thread_time() - cpu_started,
    )


def _sync_check(record: upstream.UpstreamUser) -> _CheckedRecord:
    problem = _sync_record_problem(record)
    if problem or record.email is None:
        return _CheckedRecord(problem=problem or "no email", email="", email_key="")
    email = User.objects.normalize_email(record.email)
    return _CheckedRecord(problem="", email=email, email_key=email.lower())


def _sync_page(checked: _CheckedPage, *, now: datetime) -> dict[str, int]:
    """Apply one page in the order of the feed; the caller holds the transaction."""
    state = sync_db.page_state(
        external_ids=list(checked.latest), emails=checked.emails, usernames=checked.usernames
    )
    mirrors = state.mirrors
    owners: dict[str, set[int | str]] = {email: set(pks) for email, pks in state.email_owners.items()}
    taken_usernames = state.usernames_taken
    writes = sync_db.PageWrites()
    counts = dict.fromkeys(SYNC_COUNTERS[1:], 0)
    for record in activity.giving_way(checked.latest.values()):
        outcome = _sync_record(
            record,
            checked.checks.get(record.id),
            mirror=mirrors.get(record.id),
            owners=owners,
            taken_usernames=taken_usernames,
            writes=writes,
        )
        counts[outcome] += 1
    # Decided record by record, written in a few statements per page: the
    # changes in the feed's order, then the new mirrors (updates earlier in
    # the page may be what freed their emails).
    sync_db.page_apply(writes, synced_at=now)
    return counts


def _sync_record(
    record: upstream.UpstreamUser,
    checked: _CheckedRecord | None,
    *,
    mirror: sync_db.Mirror | None,
    owners: dict[str, set[int | str]],
    taken_usernames: set[str],
    writes: sync_db.PageWrites,
) -> str:
    """Decide one record and queue its write.

    ``owners`` (lower-cased email → holders) follows every decision.
    """
    if mirror is not None and mirror.source != User.Source.THIRD_PARTY:
        return _sync_reject(record, "its external_id belongs to a local user")
    if record.deleted:
        if mirror is None or not mirror.is_active:
            return "unchanged"
        writes.changes.append(sync_db.MirrorChange(mirror.pk, is_active=False))
        mirror.is_active = False
        return "deactivated"
    assert checked is not None  # every live record is checked
    if checked.problem:
        return _sync_reject(record, checked.problem)
    email, email_key = checked.email, checked.email_key
    holder: int | str = mirror.pk if mirror is not None else record.id
    holders = owners.get(email_key)
    if holders and (len(holders) > 1 or holder not in holders):
        return _sync_reject(record, "its email is used by another user")
    display_name = record.display_name or ""
    if mirror is None:
        username = user_sync_username(external_id=record.id)
        if username in taken_usernames:
            return _sync_reject(record, f"username {username} is used by another user")
        writes.creates.append(
            sync_db.NewMirror(
                external_id=record.id, username=username, email=email, display_name=display_name
            )
        )
        owners.setdefault(email_key, set()).add(holder)
        return "created"
    if email == mirror.email and display_name == mirror.display_name and mirror.is_active:
        return "unchanged"  # the common case of a full sync, decided without building a change
    change = sync_db.MirrorChange(
        mirror.pk,
        email=email if email != mirror.email else None,
        display_name=display_name if display_name != mirror.display_name else None,
        is_active=True if not mirror.is_active else None,
    )
    writes.changes.append(change)
    if change.email is not None:
        owners.get(mirror.email.lower(), set()).discard(mirror.pk)
        owners.setdefault(email_key, set()).add(mirror.pk)
    mirror.email, mirror.display_name, mirror.is_active = email, display_name, True
    return "updated"


def _sync_record_problem(record: upstream.UpstreamUser) -> str:
    """Why a live record cannot be mirrored, or "" if it can."""
    if len(record.id) > _EXTERNAL_ID_MAX:
        return f"id longer than {_EXTERNAL_ID_MAX} characters"
    if not record.email:
        return "no email"
    if len(record.email) > _EMAIL_MAX:
        return f"email longer than {_EMAIL_MAX} characters"
    try:
        _sync_validate_email(record.email)
    except ValidationError:
        return "invalid email"
    if record.display_name and len(record.display_name) > _DISPLAY_NAME_MAX:
        return f"display_name longer than {_DISPLAY_NAME_MAX} characters"
    return ""


def _sync_reject(record: upstream.UpstreamUser, reason: str) -> str:
    sync_logger.warning("upstream user %s rejected: %s", record.id, reason)
    return "rejected"

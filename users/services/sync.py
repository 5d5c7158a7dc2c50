"""The sync from the third-party user service: the page loop, its prefetch and its pacing.

Keyword-only functions named ``<entity>_<action>``, like :mod:`users.services.accounts`.
All I/O goes through :mod:`users.repository`; the rules per record are in
:mod:`users.services.sync_records`. The sync never imports the web runtime:
whoever runs it hands it a ``give_way()`` (:mod:`users.pacing`).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django.utils import timezone

from users.conf import users_settings
from users.pacing import GiveWay, TimedGiveWay, never
from users.repository import sync_db, sync_state, sync_vacuum, upstream
from users.services import accounts, sync_records

sync_logger = logging.getLogger("users.sync")

SYNC_CURSOR_NAME = "users.third_party"
SYNC_COUNTERS = ("pages", "created", "updated", "unchanged", "deactivated", "rejected")
#: Rejected records listed by id and reason in a run's summary (the log has every one).
REJECTS_SHOWN = 20


def user_sync_configured() -> bool:
    """Whether a third-party user service is configured to sync from."""
    return bool(users_settings.third_party_url)


def user_sync_from_upstream(
    *,
    should_stop: Callable[[], bool],
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    page_size: int = 500,
    pause: float = 0.0,
    wait: Callable[[float], bool] | None = None,
    give_way: GiveWay = never,
) -> dict[str, Any]:
    """Apply the upstream change feed from the stored cursor on, one page per transaction.

    Each page's changes and its ``next_cursor`` commit together, so stopping
    (``should_stop()`` is asked before every page and during the client's
    retry waits) or failing between pages loses and repeats nothing. Without
    a pause, the next page is fetched while the current one is applied (its
    cursor is known as soon as a page arrives); a page fetched after a stop
    is never applied.
    Returns the summary also passed to ``on_progress`` after every page: the
    counters pages, created, updated, unchanged, deactivated, rejected and,
    once a record was rejected, ``rejects``: the first ``REJECTS_SHOWN``
    rejected records, each ``{"id": ..., "reason": ...}`` (a rejected record
    is skipped, the rest of its page applies and the cursor moves on; the
    log names every one). A page that breaks the contract fails the run with
    an :class:`users.repository.upstream.UpstreamError`. When any user
    was created, updated or deactivated, the cached user stats are refreshed,
    also if the run stops or fails after such a page; when any was updated,
    the users table is vacuumed first (on PostgreSQL, outside a transaction,
    unless the run is stopping). See docs/upstream.md for the rules per record.

    ``pause`` yields between pages: after a page that more pages follow, the
    sync waits ``pause`` times the page's cost (0: never): the CPU this
    process spent fetching and checking it (not the wait for the upstream's
    answer) and the time applying it took (PostgreSQL's included), so that
    the sync keeps this process and the database busy at most
    ``1 / (1 + pause)`` of the time; with a pause, the next page is fetched
    during it. The wait is ``wait(seconds)``, which returns ``True`` to stop
    the run (the job's ``ctx.sleep``); without one, a sleep that asks
    ``should_stop()`` every 50 ms.

    Its loops over a page's records call ``give_way()`` between small batches
    (in a web worker: wait while a request is in flight); the time spent there
    is not part of a page's cost.
    """
    if not 1 <= page_size <= 1000:
        raise ValueError(f"page_size must be from 1 to 1000 (the upstream maximum), got {page_size}")
    if pause < 0:
        raise ValueError(f"pause must be 0 or more, got {pause}")
    counts = dict.fromkeys(SYNC_COUNTERS, 0)
    rejects: list[tuple[str, str]] = []
    try:
        _sync_pages(
            counts,
            rejects,
            should_stop=should_stop,
            on_progress=on_progress,
            page_size=page_size,
            pause=pause,
            wait=wait or _sleep_unless_stopped(should_stop),
            give_way=TimedGiveWay(give_way),
        )
    finally:
        if counts["updated"] and not should_stop():  # a stopping run leaves it to the next one
            _sync_vacuum()
        if counts["created"] or counts["updated"] or counts["deactivated"]:
            _sync_refresh_stats()
    sync_logger.info("upstream sync: %s", ", ".join(f"{key}={value}" for key, value in counts.items()))
    return _summary(counts, rejects)


def _summary(counts: dict[str, int], rejects: list[tuple[str, str]]) -> dict[str, Any]:
    summary: dict[str, Any] = dict(counts)
    if rejects:
        summary["rejects"] = [{"id": key, "reason": reason} for key, reason in rejects[:REJECTS_SHOWN]]
    return summary


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
    rejects: list[tuple[str, str]],
    *,
    should_stop: Callable[[], bool],
    on_progress: Callable[[dict[str, Any]], None] | None,
    page_size: int,
    pause: float,
    wait: Callable[[float], bool],
    give_way: TimedGiveWay,
) -> None:
    """The page loop of :func:`user_sync_from_upstream`; adds to ``counts`` and ``rejects`` as pages commit.

    The first page is fetched here; each next one by a :class:`_Prefetcher`
    while this thread applies the current page, or, with a ``pause``, during
    the pause after it. The prefetch starts only after the page's cursor check
    passed, and is abandoned (its retry waits end) and joined before this
    returns, whatever ends the loop; its page or error is used only where the
    page would have been fetched without it.
    """
    cursor = sync_state.get_cursor(SYNC_CURSOR_NAME)
    with _Prefetcher(limit=page_size, should_stop=should_stop, give_way=give_way) as prefetcher:
        while not should_stop():
            try:
                checked = prefetcher.take()
                if checked is None:
                    checked = sync_records.page_fetch(
                        cursor=cursor, limit=page_size, should_stop=should_stop, give_way=give_way
                    )
            except upstream.UpstreamStopped:
                break
            page = checked.page
            ahead = page.has_more and bool(page.users) and not pause
            started, waited = time.monotonic(), give_way.waited()
            try:
                page_counts = _sync_apply(
                    checked,
                    cursor=cursor,
                    updated_before=counts["updated"],
                    rejects=rejects,
                    on_locked=functools.partial(prefetcher.start, page.next_cursor) if ahead else None,
                    give_way=give_way,
                )
            except sync_db.CursorMoved:
                sync_logger.warning("upstream sync: the cursor was moved by another sync; stopping")
                break
            # PostgreSQL's time counts (its work for this page); giving way does not.
            applied = time.monotonic() - started - (give_way.waited() - waited)
            cursor = page.next_cursor
            counts["pages"] += 1
            for outcome, number in page_counts.items():
                counts[outcome] += number
            if on_progress is not None:
                on_progress(_summary(counts, rejects))
            if not page.has_more:
                break
            if not page.users:
                # Following "has_more" past an empty page would ask for the same page forever.
                sync_logger.warning("upstream sync: empty page, has_more=true; stopping until the next run")
                break
            if pause:
                # Paced, the next page is fetched during the pause, not while
                # this one was applied: the sync keeps one core busy, not two.
                prefetcher.start(page.next_cursor)
                if wait(pause * (checked.cost_seconds + applied)):
                    break


def _sync_apply(
    checked: sync_records.CheckedPage,
    *,
    cursor: str,
    updated_before: int,
    rejects: list[tuple[str, str]],
    on_locked: Callable[[], None] | None,
    give_way: GiveWay,
) -> dict[str, int]:
    """Apply one page in its transaction; returns its outcomes. ``on_locked()`` runs once the cursor
    check passed (the prefetch of the next page starts there)."""
    page = checked.page
    page_counts = dict.fromkeys(SYNC_COUNTERS[1:], 0)

    def decide(state: sync_db.PageState) -> sync_db.PageWrites:
        if on_locked is not None:
            on_locked()
        writes = sync_records.page_decide(checked, state, page_counts, rejects, give_way=give_way)
        # The vacuum after the run needs every page's commit on disk.
        writes.durable = not page.has_more and bool(updated_before + page_counts["updated"])
        return writes

    sync_db.page_write(
        feed=SYNC_CURSOR_NAME,
        cursor=cursor,
        next_cursor=page.next_cursor,
        external_ids=checked.external_ids,
        emails=checked.emails,
        usernames=checked.usernames,
        decide=decide,
        synced_at=timezone.now(),
        give_way=give_way,
    )
    return page_counts


class _Prefetcher:
    """One worker thread that fetches and checks the next page while this thread applies the current one.

    The client is thread-safe; the worker touches no database, and runs in a
    copy of the starting thread's context variables, so what it logs (retries)
    lands in the job run's log. It also checks the page's records
    (:func:`users.services.sync_records.page_fetch`), so that this thread's waits for PostgreSQL are spent
    on the next page. Leaving the ``with`` block abandons a page still on its
    way (its retry waits end) and joins the worker.
    """

    def __init__(self, *, limit: int, should_stop: Callable[[], bool], give_way: GiveWay) -> None:
        self._limit = limit
        self._should_stop = should_stop
        self._give_way = give_way
        self._abandoned = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="users-sync-prefetch")
        self._pending: Future[sync_records.CheckedPage] | None = None

    def __enter__(self) -> _Prefetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._abandoned.set()
        if self._pending is not None:
            self._pending.cancel()
        self._executor.shutdown(wait=True)

    def _stopping(self) -> bool:
        return self._abandoned.is_set() or self._should_stop()

    def start(self, cursor: str) -> None:
        """Start fetching the page after ``cursor``."""
        self._pending = self._executor.submit(
            contextvars.copy_context().run,
            sync_records.page_fetch,
            cursor=cursor,
            limit=self._limit,
            should_stop=self._stopping,
            give_way=self._give_way,
        )

    def take(self) -> sync_records.CheckedPage | None:
        """The page started last (waiting for it, raising its error), or ``None`` if none was started."""
        pending, self._pending = self._pending, None
        return None if pending is None else pending.result()


def _sync_vacuum() -> None:
    """Vacuum the users table after a sync updated users, so that the list's count stays index-only
    (:func:`users.repository.sync_vacuum.mirrors_vacuum`); a failure here must not hide the sync's own."""
    started = time.monotonic()
    try:
        vacuumed = sync_vacuum.mirrors_vacuum()
    except Exception:
        sync_logger.exception("upstream sync: the users table was not vacuumed")
        return
    if vacuumed:
        took_ms = (time.monotonic() - started) * 1000
        sync_logger.info("upstream sync: users table vacuumed in %.0f ms", took_ms)


def _sync_refresh_stats() -> None:
    """Refresh the cached stats after a sync changed users; a failure here must not hide the sync's own."""
    try:
        accounts.user_stats_refresh()
    except Exception:
        sync_logger.exception("upstream sync: the user stats were not refreshed")

"""Database reads and writes of the upstream sync, batched per page of the change feed.

:func:`page_write` runs one page in one transaction: the feed's cursor locked
and checked, the page's state read, the caller's decisions written, the cursor
moved on. Every write here is limited to ``source = third_party`` rows, so even a wrong
decision upstream of this module cannot change a local account, never switches on an
account staff deactivated (``deactivated_at`` set), and bumps the row's ``version``.

A page costs a fixed number of statements, whatever its size: one lookup
(which also sets the planner for the page's transaction),
the email changes one by one (they must keep the feed's order for the unique
email), one ``UPDATE`` for every other change, and one ``COPY`` of the new
mirrors on PostgreSQL (``bulk_create`` elsewhere). Keys and changed rows
travel as one JSON parameter, new rows as ``COPY`` text
(:mod:`users.repository.sync_copy`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from django.db import connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Field, Q
from django.db.models.functions import Lower

from users.models import User
from users.pacing import GiveWay, giving_way, never
from users.repository import sync_state
from users.repository.sync_copy import NewMirror, mirrors_create

# The settings of a page's transaction (SET LOCAL: they end with it),
# sent with the page's lookup (:func:`page_state`), which comes first in it.
#
# Every statement of a page looks rows up by unique keys: a few cached index
# pages per key. With the default random_page_cost (4, meant for spinning
# disks) and a table that autovacuum has not analyzed yet (while a first sync
# fills it), the planner prices 500 such lookups above a sequential scan and
# scans the whole table for each page (bench/README.md, "Decisions").
#
# The batched UPDATE joins at most a page of rows to users by primary key. On
# a table not analyzed yet (an incremental run right after a first sync) the
# planner takes the users table for a few rows and hashes every mirror for
# each statement, many times the cost of the page's lookups.
# A nested loop over the primary key is right for any page, so it is the only
# join this statement may use, and its source condition is written so that no
# index matches it (else the loop scanned the source index for each row).
# No other statement of a page joins.
#
# The page's commit does not wait for its WAL to reach the disk: the page and
# the cursor that covers it commit together, so a server crash that lost the
# last pages lost their cursor moves too, and the next run fetches those pages
# again (replaying a page changes nothing). The WAL writer flushes within
# 3 x wal_writer_delay; nothing else in the service commits asynchronously. A
# run's last page commits synchronously (page_commit_durably), for the vacuum.
STEER_PAGE = (
    "SET LOCAL random_page_cost = 1.1; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;"
    " SET LOCAL synchronous_commit = off"
)
STEER_STATEMENTS = STEER_PAGE.count(";") + 1


@dataclass
class Mirror:
    """The synced fields of a user that has an ``external_id`` (normally a mirror, maybe a local user)."""

    pk: int
    external_id: str
    source: str
    email: str
    display_name: str
    is_active: bool
    upstream_deleted: bool
    #: Staff deactivated it here (``deactivated_at`` is set): it stays inactive whatever the upstream says.
    locked: bool
    #: ``lower(email)`` as the database computes it (the unique index's expression).
    email_key: str


_MIRROR_FIELDS = ("id", "external_id", "source", "email", "display_name", "is_active", "upstream_deleted")


@dataclass(frozen=True)
class MirrorChange:
    """New values for a mirror's synced fields; ``None`` leaves a field as it is."""

    pk: int
    email: str | None = None
    display_name: str | None = None
    is_active: bool | None = None
    upstream_deleted: bool | None = None


@dataclass
class PageWrites:
    """The writes one page decided, in the feed's order; :func:`page_apply` runs them."""

    changes: list[MirrorChange] = field(default_factory=list)
    creates: list[NewMirror] = field(default_factory=list)
    #: Commit this page synchronously (:func:`page_commit_durably`).
    durable: bool = False


@dataclass
class PageState:
    """What the database holds for one page: mirrors by external id, email holders, usernames in use,
    and the key of each of the page's emails."""

    mirrors: dict[str, Mirror]
    email_owners: dict[str, set[int]]
    usernames_taken: set[str]
    #: Each email of the page → ``lower(email)`` as the database computes it.
    email_keys: dict[str, str]


class CursorMoved(Exception):
    """The feed's stored cursor is no longer the one the page was fetched from (another sync moved it)."""


def page_write(
    *,
    feed: str,
    cursor: str,
    next_cursor: str,
    external_ids: Collection[str],
    emails: Collection[str],
    usernames: Collection[str],
    decide: Callable[[PageState], PageWrites],
    synced_at: datetime,
    give_way: GiveWay = never,
) -> PageWrites:
    """Apply one page of the feed ``feed`` in one transaction; returns what ``decide`` wrote.

    The feed's cursor row is locked first (concurrent syncs queue up there) and
    must still be ``cursor``, the position the page was fetched from, else
    :class:`CursorMoved` is raised and nothing is written. Then the page's
    state is read (:func:`page_state`), ``decide(state)`` turns it into writes,
    they are run (:func:`page_apply`) and the cursor is moved to
    ``next_cursor``: the page and its position commit together.
    """
    with transaction.atomic():
        if sync_state.lock_cursor(feed) != cursor:
            raise CursorMoved(f"the cursor of {feed!r} was moved by another sync")
        state = page_state(external_ids=external_ids, emails=emails, usernames=usernames, give_way=give_way)
        writes = decide(state)
        page_apply(writes, synced_at=synced_at, give_way=give_way)
        if next_cursor != cursor:
            sync_state.advance_cursor(feed, next_cursor)
        if writes.durable:
            page_commit_durably()
    return writes


def page_state(
    *,
    external_ids: Collection[str],
    emails: Collection[str],
    usernames: Collection[str],
    give_way: GiveWay = never,
) -> PageState:
    """The state a page's decisions need, in one round trip on PostgreSQL.

    It is the first statement of the page's transaction, and sets the planner
    for the rest of it (``STEER_PAGE``): :func:`page_apply` follows in the same
    transaction.

    Emails are compared the way the unique index ``users_user_email_ci_unique``
    compares them, by the database's ``lower(email)`` (not Python's
    ``str.lower()``, which folds more characters than PostgreSQL's or SQLite's
    ``lower()``): ``email_keys`` maps each of ``emails`` to that key,
    ``email_owners`` a key to the ids of the users holding it, and each mirror
    carries its own email's key. Case-insensitive like the rest of the app
    (``db.email_taken``), since mail servers treat ``Ann@x.org`` and
    ``ann@x.org`` as one address.

    Every key must be text the database can store (no NUL, no lone
    surrogate): the sync checks its records before their keys come here.
    """
    state = PageState(mirrors={}, email_owners={}, usernames_taken=set(), email_keys={})
    if connection.vendor == "postgresql":
        rows: Any = _page_rows_postgresql(list(external_ids), list(emails), list(usernames))
    else:
        rows = _page_rows_orm(external_ids, list(emails), usernames)
    for kind, pk, key, source, email, display_name, is_active, deleted, locked, email_key in giving_way(
        rows, give_way
    ):
        if kind == "m":
            state.mirrors[key] = Mirror(
                pk, key, source, email, display_name, is_active, deleted, locked, email_key
            )
        elif kind == "e":
            state.email_owners.setdefault(key, set()).add(pk)
        elif kind == "k":
            state.email_keys[key] = email_key
        else:
            state.usernames_taken.add(key)
    return state


def _page_rows_postgresql(external_ids: list[str], emails: list[str], usernames: list[str]) -> Any:
    # The keys travel as one JSON text, not as arrays or IN (...) lists: Django's
    # psycopg cursor binds on the client, where turning 3 x 500 strings into
    # array literals costs far more than json.dumps, which is C; and
    # ANY(ARRAY(SELECT ...)) still looks each key up in its index.
    col = {name: _column(name) for name in (*_MIRROR_FIELDS, "username")}
    table = f'"{User._meta.db_table}"'
    mirror_columns = ", ".join(col[name] for name in _MIRROR_FIELDS[2:])

    def elements(position: int) -> str:
        return f"jsonb_array_elements_text(%(keys)s::jsonb -> {position})"

    def keys(position: int, expression: str = "key") -> str:
        return f"ANY(ARRAY(SELECT {expression} FROM {elements(position)} AS key))"

    locked = f"{_column('deactivated_at')} IS NOT NULL"
    nulls = ", ".join(["NULL"] * 6)
    sql = (
        f"SELECT 'm', {col['id']}, {col['external_id']}, {mirror_columns}, {locked}, lower({col['email']})"
        f" FROM {table} WHERE {col['external_id']} = {keys(0)}"
        f" UNION ALL SELECT 'e', {col['id']}, lower({col['email']}), {nulls}, NULL"
        f" FROM {table} WHERE lower({col['email']}) = {keys(1, 'lower(key)')}"
        f" UNION ALL SELECT 'u', {col['id']}, {col['username']}, {nulls}, NULL"
        f" FROM {table} WHERE {col['username']} = {keys(2)}"
        f" UNION ALL SELECT 'k', NULL, key, {nulls}, lower(key) FROM {elements(1)} AS key"
    )
    with connection.cursor() as cursor:
        # Several statements in one round trip (Django's psycopg cursor binds on the client).
        cursor.execute(f"{STEER_PAGE}; {sql}", {"keys": json.dumps([external_ids, emails, usernames])})
        for _ in range(STEER_STATEMENTS):
            cursor.nextset()
        return cursor.fetchall()


def _page_rows_orm(external_ids: Collection[str], emails: list[str], usernames: Collection[str]) -> Any:
    email_keys = dict(zip(emails, _lower(emails), strict=True))
    mirrors = (
        User.objects.filter(external_id__in=external_ids)
        .annotate(
            locked=ExpressionWrapper(Q(deactivated_at__isnull=False), output_field=BooleanField()),
            email_lower=Lower("email"),
        )
        .values_list(*_MIRROR_FIELDS, "locked", "email_lower")
    )
    owners = (
        User.objects.annotate(email_lower=Lower("email"))
        .filter(email_lower__in=set(email_keys.values()))
        .values_list("pk", "email_lower")
    )
    taken = User.objects.filter(username__in=usernames).values_list("pk", "username")
    nulls = (None,) * 6
    yield from (("m", *row) for row in mirrors)
    yield from (("e", pk, email, *nulls, None) for pk, email in owners)
    yield from (("u", pk, username, *nulls, None) for pk, username in taken)
    yield from (("k", None, email, *nulls, key) for email, key in email_keys.items())


def _lower(texts: list[str]) -> list[str]:
    """The database's ``lower()`` of each text (a few hundred per statement)."""
    lowered: list[str] = []
    with connection.cursor() as cursor:
        for start in range(0, len(texts), 500):
            chunk = texts[start : start + 500]
            cursor.execute("SELECT " + ", ".join(["lower(%s)"] * len(chunk)), chunk)
            lowered.extend(cursor.fetchone() or ())
    return lowered


def page_commit_durably() -> None:
    """Make the current page's transaction commit synchronously, unlike the others (PostgreSQL).

    Its commit waits until the log is on disk up to it, and so up to every
    asynchronous commit before it: the vacuum after the run can then mark
    the pages all-visible (:func:`users.repository.sync_vacuum.mirrors_vacuum`).
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = on")


def page_apply(writes: PageWrites, *, synced_at: datetime, give_way: GiveWay = never) -> None:
    """Run a page's writes inside the caller's transaction, after :func:`page_state` in it.

    Email changes go first and one by one in the feed's order: one may free
    the address a later one takes, and a unique index is checked row by row.
    The other changes cannot collide, so they go in one statement; the new
    mirrors go last, since their addresses may have been freed by the changes.
    """
    in_order = [change for change in writes.changes if change.email is not None]
    batch = [change for change in writes.changes if change.email is None]
    for change in in_order:
        _mirrors_change([change], synced_at=synced_at)
    _mirrors_change(batch, synced_at=synced_at)
    mirrors_create(writes.creates, synced_at=synced_at, give_way=give_way)


def _mirrors_change(changes: list[MirrorChange], *, synced_at: datetime) -> None:
    """Apply the changes (``synced_at`` and ``updated_at`` move only on the changed rows)."""
    if not changes:
        return
    if connection.vendor != "postgresql":
        for change in changes:
            values = {
                name: getattr(change, name)
                for name in ("email", "display_name", "is_active", "upstream_deleted")
                if getattr(change, name) is not None
            }
            if values.get("is_active"):
                values["is_active"] = ExpressionWrapper(
                    Q(deactivated_at__isnull=True), output_field=BooleanField()
                )
            # update() skips auto_now, hence updated_at by hand.
            User.objects.filter(pk=change.pk, source=User.Source.THIRD_PARTY).update(
                **values, synced_at=synced_at, updated_at=synced_at, version=F("version") + 1
            )
        return
    email, name, active = _column("email"), _column("display_name"), _column("is_active")
    deleted, version = _column("upstream_deleted"), _column("version")
    sql = (
        f'UPDATE "{User._meta.db_table}" AS u SET'
        f" {email} = COALESCE(v.email, u.{email}),"
        f" {name} = COALESCE(v.display_name, u.{name}),"
        # A row staff deactivated after the page's lookup (it is not locked then) stays inactive.
        f" {active} = COALESCE(v.is_active, u.{active}) AND u.{_column('deactivated_at')} IS NULL,"
        f" {deleted} = COALESCE(v.upstream_deleted, u.{deleted}),"
        f" {version} = u.{version} + 1,"
        f" {_column('synced_at')} = %s, {_column('updated_at')} = %s"
        " FROM jsonb_to_recordset(%s::jsonb)"
        " AS v(pk bigint, email text, display_name text, is_active boolean, upstream_deleted boolean)"
        # COALESCE: not a condition the (source, is_active) index can serve (see STEER_PAGE).
        f" WHERE u.{_column('id')} = v.pk AND COALESCE(u.{_column('source')}, '') = %s"
    )
    rows = [vars(change) for change in changes]  # pk, email, display_name, is_active, upstream_deleted
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            # One JSON text rather than four arrays (see _page_rows_postgresql).
            [synced_at, synced_at, json.dumps(rows), User.Source.THIRD_PARTY.value],
        )


def _column(name: str) -> str:
    """The quoted column of a ``User`` field, for the hand-written statements of PostgreSQL."""
    column = cast("Field[Any, Any]", User._meta.get_field(name)).column
    return f'"{column}"'

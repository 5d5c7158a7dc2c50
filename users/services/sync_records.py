"""The upstream sync's rules per record: what a record's own fields allow, and what it does to its mirror.

A page is fetched and its records checked (:func:`page_fetch`, no database),
then decided against the page's state in the database (:func:`page_decide`,
no I/O): :mod:`users.services.sync` runs both and writes the decisions through
:mod:`users.repository.sync_db`. The rules in words: docs/upstream.md.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from users.models import User
from users.pacing import GiveWay, giving_way
from users.repository import sync_db, upstream
from users.repository.upstream import UpstreamUser

sync_logger = logging.getLogger("users.sync")

EXTERNAL_ID_MAX = User._meta.get_field("external_id").max_length or 64
EMAIL_MAX = User._meta.get_field("email").max_length or 254
DISPLAY_NAME_MAX = User._meta.get_field("display_name").max_length or 150


@functools.lru_cache(maxsize=4096)
def _email_domain_valid(domain: str) -> bool:
    return EmailValidator().validate_domain_part(domain)


class _SyncEmailValidator(EmailValidator):
    """Django's ``validate_email``, rule for rule, at a fraction of the cost for a page of records.

    Its lazily compiled user regex is compiled once here (the lazy proxy cost
    two attribute lookups per call), and each domain's verdict is kept (a feed
    repeats few domains; see bench/README.md).
    """

    user_regex = re.compile(EmailValidator.user_regex.pattern, EmailValidator.user_regex.flags)

    def validate_domain_part(self, domain_part: str) -> bool:
        return _email_domain_valid(domain_part)


validate_email = _SyncEmailValidator()


#: What PostgreSQL's text cannot hold (NUL) and what UTF-8 cannot encode (a lone surrogate).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE = "a character the database cannot store (NUL or a lone surrogate)"


def shown(text: str) -> str:
    """``text`` as a log line or a run's summary may hold it: escaped unless printable."""
    return text if text.isprintable() else ascii(text)[1:-1]


def user_sync_username(*, external_id: str) -> str:
    """The username of the mirror of an upstream user (the ``ext-`` prefix keeps it apart from local ones)."""
    return f"ext-{external_id}"


@dataclass(frozen=True)
class CheckedRecord:
    """What a record's own fields decide, worked out without the database."""

    #: Why the record cannot be mirrored, or "".
    problem: str
    #: A live record's normalized email ("" with a problem, and for a tombstone).
    email: str


def record_check(record: UpstreamUser) -> CheckedRecord:
    """Check a record's own fields before any of them reaches the database."""
    problem = _text_problem("id", record.id, EXTERNAL_ID_MAX)
    if problem or record.deleted:
        return CheckedRecord(problem=problem, email="")
    email, problem = _email_checked(record.email)
    problem = problem or _text_problem("display_name", record.display_name or "", DISPLAY_NAME_MAX)
    return CheckedRecord(problem=problem, email="" if problem else email)


def _text_problem(field: str, value: str, max_length: int) -> str:
    if _UNSTORABLE.search(value):
        return f"{field} holds {UNSTORABLE}"
    if len(value) > max_length:
        return f"{field} longer than {max_length} characters"
    return ""


def _email_checked(email: str | None) -> tuple[str, str]:
    """The normalized email and "", or "" and why the email cannot be stored."""
    if not email:
        return "", "no email"
    problem = _text_problem("email", email, EMAIL_MAX)
    if problem:
        return "", problem
    try:
        validate_email(email)
    except ValidationError:
        return "", "invalid email"
    # The domain is lower-cased here, which can lengthen it ("İ" becomes two characters).
    normalized = User.objects.normalize_email(email)
    return normalized, _text_problem("email", normalized, EMAIL_MAX)


def record_decide(
    record: UpstreamUser,
    checked: CheckedRecord,
    *,
    state: sync_db.PageState,
    owners: dict[str, set[int | str]],
    writes: sync_db.PageWrites,
    rejects: list[tuple[str, str]],
) -> str:
    """Decide one record, queue its write and return its outcome (a counter of the run).

    ``owners`` (an email's key → holders) follows every decision; a rejected
    record's id and reason are added to ``rejects``.
    """
    if checked.problem:
        return record_reject(record, checked.problem, rejects)
    mirror = state.mirrors.get(record.id)
    if mirror is not None and mirror.source != User.Source.THIRD_PARTY:
        return record_reject(record, "its external_id belongs to a local user", rejects)
    if record.deleted:
        if mirror is None or (mirror.upstream_deleted and not mirror.is_active):
            return "unchanged"
        outcome = "deactivated" if mirror.is_active else "updated"
        writes.changes.append(
            sync_db.MirrorChange(
                mirror.pk,
                is_active=False if mirror.is_active else None,
                upstream_deleted=True if not mirror.upstream_deleted else None,
            )
        )
        mirror.is_active, mirror.upstream_deleted = False, True
        return outcome
    email = checked.email
    email_key = state.email_keys[email]
    holder: int | str = mirror.pk if mirror is not None else record.id
    holders = owners.get(email_key)
    if holders and (len(holders) > 1 or holder not in holders):
        return record_reject(record, "its email is used by another user", rejects)
    display_name = record.display_name or ""
    if mirror is None:
        username = user_sync_username(external_id=record.id)
        if username in state.usernames_taken:
            return record_reject(record, f"username {username} is used by another user", rejects)
        writes.creates.append(
            sync_db.NewMirror(
                external_id=record.id, username=username, email=email, display_name=display_name
            )
        )
        owners.setdefault(email_key, set()).add(holder)
        return "created"
    # A local deactivation wins: the sync keeps the account's fields current but never switches it on.
    active = not mirror.locked
    if (
        email == mirror.email
        and display_name == mirror.display_name
        and mirror.is_active == active
        and not mirror.upstream_deleted
    ):
        return "unchanged"  # the common case of a full sync, decided without building a change
    change = sync_db.MirrorChange(
        mirror.pk,
        email=email if email != mirror.email else None,
        display_name=display_name if display_name != mirror.display_name else None,
        is_active=active if mirror.is_active != active else None,
        upstream_deleted=False if mirror.upstream_deleted else None,
    )
    writes.changes.append(change)
    if change.email is not None:
        owners.get(mirror.email_key, set()).discard(mirror.pk)
        owners.setdefault(email_key, set()).add(mirror.pk)
    mirror.email, mirror.email_key = email, email_key
    mirror.display_name, mirror.is_active, mirror.upstream_deleted = display_name, active, False
    return "updated"


def record_reject(record: UpstreamUser, reason: str, rejects: list[tuple[str, str]]) -> str:
    sync_logger.warning("upstream user %s rejected: %s", shown(record.id), reason)
    rejects.append((shown(record.id), reason))
    return "rejected"


@dataclass(frozen=True)
class CheckedPage:
    """A page of the feed with its records checked and its lookup keys built."""

    page: upstream.ChangesPage
    #: The feed lists each user once, at its latest change; should a page
    #: repeat an id anyway, its later item is the one that counts.
    latest: dict[str, upstream.UpstreamUser]
    checks: dict[str, CheckedRecord]
    #: The keys of the page's lookup: only of records that passed their checks.
    external_ids: list[str]
    emails: set[str]
    #: For every live id (a superset of the ones without a mirror), so that
    #: the page's whole state comes in one round trip.
    usernames: list[str]
    #: The page's cost before it is applied, whichever thread paid it: the
    #: CPU this process spent fetching and checking it (a wait for the
    #: upstream's answer, or to give way to requests, costs nothing here).
    cost_seconds: float


def page_fetch(*, cursor: str, limit: int, should_stop: Callable[[], bool], give_way: GiveWay) -> CheckedPage:
    """Fetch a page and check its records (no database: the prefetch worker runs this)."""
    cpu_started = time.thread_time()
    page = upstream.fetch_changes(cursor=cursor, limit=limit, should_stop=should_stop, give_way=give_way)
    latest = {record.id: record for record in page.users}
    checks = {key: record_check(record) for key, record in giving_way(latest.items(), give_way)}
    passed = [record for record in latest.values() if not checks[record.id].problem]
    live = [record.id for record in passed if not record.deleted]
    return CheckedPage(
        page=page,
        latest=latest,
        checks=checks,
        external_ids=[record.id for record in passed],
        emails={checks[external_id].email for external_id in live},
        usernames=[user_sync_username(external_id=external_id) for external_id in live],
        cost_seconds=time.thread_time() - cpu_started,
    )


def page_decide(
    checked: CheckedPage,
    state: sync_db.PageState,
    counts: dict[str, int],
    rejects: list[tuple[str, str]],
    *,
    give_way: GiveWay,
) -> sync_db.PageWrites:
    """Decide a page's records in the order of the feed, adding their outcomes to ``counts`` and the
    rejected ones to ``rejects``."""
    owners: dict[str, set[int | str]] = {key: set(pks) for key, pks in state.email_owners.items()}
    writes = sync_db.PageWrites()
    for record in giving_way(checked.latest.values(), give_way):
        outcome = record_decide(
            record, checked.checks[record.id], state=state, owners=owners, writes=writes, rejects=rejects
        )
        counts[outcome] += 1
    # Decided record by record, written in a few statements per page: the
    # changes in the feed's order, then the new mirrors (updates earlier in
    # the page may be what freed their emails).
    return writes

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


def user_sync_username(*, external_id: str) -> str:
    """The username of the mirror of an upstream user (the ``ext-`` prefix keeps it apart from local ones)."""
    return f"ext-{external_id}"


@dataclass(frozen=True)
class CheckedRecord:
    """What a live record's own fields decide, worked out without the database."""

    #: Why the record cannot be mirrored, or "".
    problem: str
    #: The normalized email ("" with a problem), and its lower-cased form.
    email: str
    email_key: str


def record_check(record: UpstreamUser) -> CheckedRecord:
    """Check a live record's own fields."""
    problem = record_problem(record)
    if problem or record.email is None:
        return CheckedRecord(problem=problem or "no email", email="", email_key="")
    email = User.objects.normalize_email(record.email)
    return CheckedRecord(problem="", email=email, email_key=email.lower())


def record_problem(record: UpstreamUser) -> str:
    """Why a live record cannot be mirrored, or "" if it can."""
    if len(record.id) > EXTERNAL_ID_MAX:
        return f"id longer than {EXTERNAL_ID_MAX} characters"
    if not record.email:
        return "no email"
    if len(record.email) > EMAIL_MAX:
        return f"email longer than {EMAIL_MAX} characters"
    try:
        validate_email(record.email)
    except ValidationError:
        return "invalid email"
    if record.display_name and len(record.display_name) > DISPLAY_NAME_MAX:
        return f"display_name longer than {DISPLAY_NAME_MAX} characters"
    return ""


def record_decide(
    record: UpstreamUser,
    checked: CheckedRecord | None,
    *,
    mirror: sync_db.Mirror | None,
    owners: dict[str, set[int | str]],
    taken_usernames: set[str],
    writes: sync_db.PageWrites,
) -> str:
    """Decide one record, queue its write and return its outcome (a counter of the run).

    ``owners`` (lower-cased email → holders) follows every decision.
    """
    if mirror is not None and mirror.source != User.Source.THIRD_PARTY:
        return record_reject(record, "its external_id belongs to a local user")
    if record.deleted:
        if mirror is None or not mirror.is_active:
            return "unchanged"
        writes.changes.append(sync_db.MirrorChange(mirror.pk, is_active=False))
        mirror.is_active = False
        return "deactivated"
    assert checked is not None  # every live record is checked
    if checked.problem:
        return record_reject(record, checked.problem)
    email, email_key = checked.email, checked.email_key
    holder: int | str = mirror.pk if mirror is not None else record.id
    holders = owners.get(email_key)
    if holders and (len(holders) > 1 or holder not in holders):
        return record_reject(record, "its email is used by another user")
    display_name = record.display_name or ""
    if mirror is None:
        username = user_sync_username(external_id=record.id)
        if username in taken_usernames:
            return record_reject(record, f"username {username} is used by another user")
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


def record_reject(record: UpstreamUser, reason: str) -> str:
    sync_logger.warning("upstream user %s rejected: %s", record.id, reason)
    return "rejected"


@dataclass(frozen=True)
class CheckedPage:
    """A page of the feed with its records checked and its lookup keys built."""

    page: upstream.ChangesPage
    #: The feed lists each user once, at its latest change; should a page
    #: repeat an id anyway, its later item is the one that counts.
    latest: dict[str, upstream.UpstreamUser]
    #: Live records only (a tombstone needs no check).
    checks: dict[str, CheckedRecord]
    emails: set[str]
    #: For every id (a superset of the ones without a mirror), so that the
    #: page's whole state comes in one round trip.
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
    checks = {
        key: record_check(record)
        for key, record in giving_way(latest.items(), give_way)
        if not record.deleted
    }
    return CheckedPage(
        page=page,
        latest=latest,
        checks=checks,
        emails={record.email.lower() for record in latest.values() if record.email},
        usernames=[user_sync_username(external_id=external_id) for external_id in latest],
        cost_seconds=time.thread_time() - cpu_started,
    )


def page_decide(
    checked: CheckedPage, state: sync_db.PageState, counts: dict[str, int], *, give_way: GiveWay
) -> sync_db.PageWrites:
    """Decide a page's records in the order of the feed, adding their outcomes to ``counts``."""
    owners: dict[str, set[int | str]] = {email: set(pks) for email, pks in state.email_owners.items()}
    writes = sync_db.PageWrites()
    for record in giving_way(checked.latest.values(), give_way):
        outcome = record_decide(
            record,
            checked.checks.get(record.id),
            mirror=state.mirrors.get(record.id),
            owners=owners,
            taken_usernames=state.usernames_taken,
            writes=writes,
        )
        counts[outcome] += 1
    # Decided record by record, written in a few statements per page: the
    # changes in the feed's order, then the new mirrors (updates earlier in
    # the page may be what freed their emails).
    return writes

"""Accounts: local users, their API tokens and the user stats.

Shared by the REST API, the admin, the jobs and the commands. Functions are
keyword-only and named ``<entity>_<action>``; they raise Django's
``ValidationError`` (keyed by field) for bad input and :class:`UserConflict`
(keyed the same way) for a request the users' current state refuses: a taken
email or username, a field the sync owns, a stale ``version``. Each interface
turns them into its own error form. All I/O goes through :mod:`users.repository`.

Local decisions win over the sync: staff deactivating an account records who
and when (``deactivated_at``/``deactivated_by``), and the sync never switches
such an account back on; reactivating it lifts that. A mirror's email and
display name belong to the sync (:data:`SYNC_OWNED`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypedDict, cast

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from knox.models import AuthToken

from users.models import User
from users.repository import cache, db

# The refresh job runs every 30 s; four intervals of slack mean a late or
# skipped tick does not turn every request into a query, while with jobs
# switched off the numbers are never more than two minutes old.
STATS_CACHE_SECONDS = 120

EMAIL_TAKEN = "A user with this email address already exists."
USERNAME_TAKEN = "A user with this username already exists."
SYNC_OWNED_MESSAGE = (
    "The third-party user service sets this field of a mirrored user; it cannot be changed here."
)
STALE_VERSION = (
    "This user was changed since you read it (by someone else or by the sync); it is now at version"
    " {current}. Read it again and reapply your change."
)
DELETED_UPSTREAM = (
    "The third-party user service deleted or disabled this user: it becomes active again when the"
    " upstream restores it."
)

#: The fields of a mirrored user that only the sync writes (is_active is a local decision, see above).
SYNC_OWNED = ("email", "display_name")


class UserConflict(Exception):
    """The request is well formed but the users' current state refuses it; ``errors``: field -> messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


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


def user_get_for_change(*, user_id: int) -> User | None:
    """The user, its row locked until the caller's transaction ends (the admin's change form)."""
    return db.user_by_id_for_update(user_id)


def _check_email_free(email: str, *, exclude_id: int | None = None) -> None:
    if db.email_taken(email, exclude_id=exclude_id):
        raise UserConflict({"email": [EMAIL_TAKEN]})


def _raise_for_taken(*, email: str, username: str | None, exclude_id: int | None) -> None:
    """Turn a unique-constraint race (the pre-check passed, the insert failed) into a field error."""
    _check_email_free(email, exclude_id=exclude_id)
    if username is not None and db.username_taken(username):
        raise UserConflict({"username": [USERNAME_TAKEN]})


def user_version_check(*, user: User, version: int | None) -> None:
    """Refuse a change made from a read older than ``user``'s current ``version`` (``None``: no check)."""
    if version is not None and version != user.version:
        raise UserConflict({"version": [STALE_VERSION.format(current=user.version)]})


def user_sync_owned_check(*, user: User, changes: dict[str, Any]) -> None:
    """Refuse a change to a field of a mirrored user that the sync owns."""
    owned = sorted(field for field in SYNC_OWNED if field in changes) if user.is_mirror else []
    if owned:
        raise UserConflict({field: [SYNC_OWNED_MESSAGE] for field in owned})


def user_reactivation_refused(*, user: User) -> str:
    """Why ``user`` cannot be switched on here, or ""."""
    return DELETED_UPSTREAM if user.is_mirror and user.upstream_deleted else ""


def user_activation_set(*, user: User, active: bool, by: str) -> list[str]:
    """Switch ``user`` off (a local decision the sync keeps) or on (which lifts it).

    Sets the fields and returns their names (none if the user already is so);
    the caller saves them. A mirror the upstream deleted cannot be switched on.
    """
    if active == user.is_active and active != user.locally_deactivated:
        return []
    if active:
        problem = user_reactivation_refused(user=user)
        if problem:
            raise UserConflict({"is_active": [problem]})
        user.deactivated_at, user.deactivated_by = None, ""
    else:
        user.deactivated_at, user.deactivated_by = timezone.now(), by
    user.is_active = active
    return ["is_active", "deactivated_at", "deactivated_by"]


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
        raise UserConflict({"username": [USERNAME_TAKEN]})
    if password is not None:
        try:
            validate_password(password, user=User(username=username, email=email, display_name=display_name))
        except ValidationError as exc:
            raise ValidationError({"password": exc.messages}) from None
    try:
        return db.user_insert(
            username=username, email=email, password=password, display_name=display_name, is_staff=is_staff
        )
    except db.UniqueTaken:
        _raise_for_taken(email=email, username=username, exclude_id=None)
        raise


def user_update(
    *,
    user: User,
    by: str,
    version: int | None = None,
    email: str | None = None,
    display_name: str | None = None,
    is_active: bool | None = None,
    is_staff: bool | None = None,
) -> User:
    """Change the given fields (``None`` leaves a field as it is) and save only those.

    ``by`` names who asks (kept with a deactivation). ``version``, when given, is the
    version the change was made from: a stale one is refused. The save itself is
    conditional on the version ``user`` was read at, so a write in between (the
    sync's, another request's) is never overwritten.
    """
    user_version_check(user=user, version=version)
    changes: dict[str, Any] = {}
    if email is not None:
        email = User.objects.normalize_email(email)
        if email != user.email:
            changes["email"] = email
    for field, value in (("display_name", display_name), ("is_staff", is_staff)):
        if value is not None and value != getattr(user, field):
            changes[field] = value
    user_sync_owned_check(user=user, changes=changes)
    if "email" in changes:
        _check_email_free(changes["email"], exclude_id=user.pk)
    for field, value in changes.items():
        setattr(user, field, value)
    fields = list(changes)
    if is_active is not None:
        fields += user_activation_set(user=user, active=is_active, by=by)
    if not fields:
        return user
    try:
        saved = db.user_save(user, fields=fields)
    except db.UniqueTaken:
        _raise_for_taken(email=user.email, username=None, exclude_id=user.pk)
        raise
    if not saved:
        current = db.user_by_id(user.pk)
        raise UserConflict({"version": [STALE_VERSION.format(current=current.version if current else "?")]})
    return user


def user_profile_update(
    *, user: User, version: int | None = None, email: str | None = None, display_name: str | None = None
) -> User:
    """Self-service edit: people may change how they are named and reached, never their rights."""
    return user_update(
        user=user, by=user.get_username(), version=version, email=email, display_name=display_name
    )


def user_deactivate(*, user: User, by: str) -> User:
    """Switch the account off, as a local decision the sync keeps (until staff switch it on again).

    The row stays so history and upstream mirroring keep their references.
    """
    return user_update(user=user, by=by, is_active=False)


def user_admin_save(*, user: User, changed: list[str], by: str) -> None:
    """Save a user edited in the admin's change form, whose row the form's request holds locked.

    The form checked the version it was opened at against the locked row; a
    change of ``is_active`` is a local decision (:func:`user_activation_set`).
    """
    if "is_active" in changed:
        wanted = user.is_active
        user.is_active = not wanted
        user_activation_set(user=user, active=wanted, by=by)
    user.version += 1
    db.user_save_all(user)


def users_activation_set(*, users: list[User], active: bool, by: str) -> tuple[int, list[str]]:
    """Switch several users off or on (the admin's actions); returns how many changed and the refusals."""
    changed, refused = 0, []
    for user in users:
        try:
            fields = user_activation_set(user=user, active=active, by=by)
        except UserConflict as exc:
            refused.append(f"{user}: {exc.errors['is_active'][0]}")
            continue
        if fields and db.user_save(user, fields=fields):
            changed += 1
    return changed, refused


def user_ensure_superuser(*, username: str, email: str, password: str) -> tuple[User, bool]:
    """The superuser ``username``, created if missing (an existing one is left untouched)."""
    return db.superuser_get_or_create(username=username, email=email, password=password)


def auth_sign_in(*, request: HttpRequest, username: str, password: str) -> User | None:
    """The user these credentials belong to, or ``None``. Every sign-in goes through the limiter
    (django-axes): a failure is counted, and a locked-out client is refused before the password is
    checked; axes' middleware then answers the request with the lockout (``users.lockout``)."""
    return db.user_authenticate(request, username=username, password=password)


def auth_token_obtain(*, user: User) -> tuple[str, datetime | None]:
    """A new API token of ``user`` and when it expires (``API_TOKEN_TTL_DAYS`` from now, fixed)."""
    return db.auth_token_create(user)


def auth_token_revoke(*, token: AuthToken) -> None:
    """Revoke an API token at once (the caller signs out wherever it was used)."""
    db.auth_token_delete(token)


def auth_tokens_revoke_all(*, user_id: int) -> int:
    """Revoke every API token of a user (their password changed); the number revoked."""
    return db.auth_tokens_delete_for(user_id)


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

"""Accounts: local users, their API tokens and the user stats.

Shared by the REST API, the jobs and the commands. Functions are keyword-only
and named ``<entity>_<action>``; they raise Django's ``ValidationError`` (keyed
by field) for bad input, which each interface turns into its own error form.
All I/O goes through :mod:`users.repository`.
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
        return db.user_insert(
            username=username, email=email, password=password, display_name=display_name, is_staff=is_staff
        )
    except db.UniqueTaken:
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
        db.user_save(user, fields=list(changes))
    except db.UniqueTaken:
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

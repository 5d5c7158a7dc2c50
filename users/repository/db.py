"""ORM queries of the user directory: accounts, sign-in, API tokens and the stats aggregate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import authenticate
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, QuerySet, Value
from django.db.models.functions import Lower
from django.http import HttpRequest
from django.utils import timezone
from knox.models import AuthToken

from users.models import User


class UniqueTaken(Exception):
    """A write broke a unique constraint (an email or username taken meanwhile); nothing was written."""


def user_queryset() -> QuerySet[User]:
    """Every user, in a stable order so pages never overlap or skip rows."""
    return User.objects.order_by("id")


def user_by_id(user_id: int) -> User | None:
    try:
        return User.objects.get(pk=user_id)
    except User.DoesNotExist:
        return None


def email_taken(email: str, *, exclude_id: int | None = None) -> bool:
    """Case-insensitive: mail servers treat ``Ann@x.org`` and ``ann@x.org`` as one address.

    ``lower(email) = lower(%s)``, the expression of the unique index
    ``users_user_email_ci_unique``, so the index answers it (``iexact`` is
    ``UPPER(...)`` on PostgreSQL, which no index serves).
    """
    query = User.objects.alias(email_lower=Lower("email")).filter(email_lower=Lower(Value(email)))
    if exclude_id is not None:
        query = query.exclude(pk=exclude_id)
    return query.exists()


def username_taken(username: str) -> bool:
    return User.objects.filter(username=username).exists()


def user_insert(
    *, username: str, email: str, password: str | None, display_name: str, is_staff: bool
) -> User:
    """Insert a local user; ``password=None`` stores an unusable password.

    Raises :class:`UniqueTaken` when the email or username was taken meanwhile.
    """
    try:
        with transaction.atomic():
            return User.objects.create_user(
                username=username,
                email=email,
                password=password,
                display_name=display_name,
                is_staff=is_staff,
                source=User.Source.LOCAL,
            )
    except IntegrityError as exc:
        raise UniqueTaken(str(exc)) from exc


def user_by_id_for_update(user_id: int) -> User | None:
    """The user, its row locked until the current transaction ends (``SELECT … FOR UPDATE``)."""
    return User.objects.select_for_update().filter(pk=user_id).first()


def user_save(user: User, *, fields: list[str]) -> bool:
    """Save the given fields if the row is still at ``user.version``, and bump it.

    Returns False, writing nothing, when someone saved the row since ``user`` was
    read; raises :class:`UniqueTaken` when the new email was taken meanwhile.
    """
    now = timezone.now()
    values = {field: getattr(user, field) for field in fields}
    try:
        with transaction.atomic():
            saved = User.objects.filter(pk=user.pk, version=user.version).update(
                **values, updated_at=now, version=F("version") + 1
            )
    except IntegrityError as exc:
        raise UniqueTaken(str(exc)) from exc
    if saved:
        user.updated_at, user.version = now, user.version + 1
    return bool(saved)


def user_save_all(user: User) -> None:
    """Save every field of ``user`` (the admin's change form, which holds its row locked)."""
    user.save()


def superuser_get_or_create(*, username: str, email: str, password: str) -> tuple[User, bool]:
    existing = User.objects.filter(username=username).first()
    if existing is not None:
        return existing, False
    return User.objects.create_superuser(username=username, email=email, password=password), True


def user_counts(*, day_ago: datetime, week_ago: datetime) -> dict[str, int]:
    """All user counts in one aggregate query; ``source_<value>`` holds the count per source."""
    per_source = {f"source_{value}": Count("pk", filter=Q(source=value)) for value in User.Source.values}
    counts: dict[str, Any] = User.objects.aggregate(
        total=Count("pk"),
        active=Count("pk", filter=Q(is_active=True)),
        new_last_24h=Count("pk", filter=Q(created_at__gte=day_ago)),
        new_last_7d=Count("pk", filter=Q(created_at__gte=week_ago)),
        **per_source,
    )
    return {key: int(value or 0) for key, value in counts.items()}


def user_authenticate(request: HttpRequest, *, username: str, password: str) -> User | None:
    """Django's ``authenticate``, through the sign-in limiter (axes' backend counts and refuses)."""
    user = authenticate(request, username=username, password=password)
    return user if isinstance(user, User) else None


def auth_token_create(user: User) -> tuple[str, datetime | None]:
    """A new API token of ``user``: the token (shown once, stored only as its digest) and its expiry."""
    instance, token = AuthToken.objects.create(user=user)
    return token, instance.expiry


def auth_token_delete(token: AuthToken) -> None:
    """Delete one API token; requests that present it are refused from then on."""
    AuthToken.objects.filter(pk=token.pk).delete()


def auth_tokens_delete_for(user_id: int) -> int:
    """Delete every API token of a user; the number deleted."""
    deleted, _ = AuthToken.objects.filter(user_id=user_id).delete()
    return deleted

"""Database reads and writes of the upstream sync, batched per page of the change feed.

Every write here is limited to ``source = third_party`` rows, so even a wrong
decision upstream of this module cannot change a local account.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models.functions import Lower

from users.models import User


@dataclass
class Mirror:
    """The synced fields of a user that has an ``external_id`` (normally a mirror, maybe a local user)."""

    pk: int
    external_id: str
    source: str
    email: str
    display_name: str
    is_active: bool


@dataclass(frozen=True)
class NewMirror:
    external_id: str
    username: str
    email: str
    display_name: str


def users_by_external_id(external_ids: Collection[str]) -> dict[str, Mirror]:
    rows = User.objects.filter(external_id__in=external_ids).values_list(
        "pk", "external_id", "source", "email", "display_name", "is_active"
    )
    return {
        external_id: Mirror(pk, external_id, source, email, display_name, is_active)
        for pk, external_id, source, email, display_name, is_active in rows
        if external_id is not None
    }


def email_owners(emails: Collection[str]) -> dict[str, set[int]]:
    """Lower-cased email → ids of the users holding it, for the lower-cased ``emails``.

    Case-insensitive like the rest of the app (``db.email_taken``): mail
    servers treat ``Ann@x.org`` and ``ann@x.org`` as one address.
    """
    owners: dict[str, set[int]] = {}
    rows = (
        User.objects.annotate(email_lower=Lower("email"))
        .filter(email_lower__in=emails)
        .values_list("email_lower", "pk")
    )
    for email, pk in rows:
        owners.setdefault(email, set()).add(pk)
    return owners


def usernames_taken(usernames: Collection[str]) -> set[str]:
    return set(User.objects.filter(username__in=usernames).values_list("username", flat=True))


def mirror_update(pk: int, *, changes: dict[str, Any], synced_at: datetime) -> None:
    # update() skips auto_now, hence updated_at by hand.
    User.objects.filter(pk=pk, source=User.Source.THIRD_PARTY).update(
        **changes, synced_at=synced_at, updated_at=synced_at
    )


def mirrors_create(mirrors: list[NewMirror], *, synced_at: datetime) -> None:
    users = []
    for mirror in mirrors:
        user = User(
            username=mirror.username,
            email=mirror.email,
            display_name=mirror.display_name,
            external_id=mirror.external_id,
            source=User.Source.THIRD_PARTY,
            synced_at=synced_at,
        )
        user.set_unusable_password()
        users.append(user)
    User.objects.bulk_create(users)

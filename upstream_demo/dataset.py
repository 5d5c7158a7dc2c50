"""The demo upstream's data: N users generated from their index, and the change feed over them.

User ``i`` (1-based) is ``u{i:06d}`` with email ``user{i:06d}@upstream.example``,
changed at ``EPOCH + i minutes``; every 50th user is a tombstone. Times are
integer microseconds since the Unix epoch, so ordering and cursors are exact.
:meth:`Dataset.touch` changes users the way the real service would: a new
``updated_at`` that is "now" but never earlier than the newest one, which moves
the user to the end of the feed.
"""

from __future__ import annotations

import bisect
import random
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
SPACING = timedelta(minutes=1)
TOMBSTONE_EVERY = 50
MAX_USERS = 999_999  # the id format has six digits

_EPOCH_US = int(EPOCH.timestamp()) * 1_000_000
_SPACING_US = int(SPACING.total_seconds() * 1_000_000)

FeedKey = tuple[int, str]  # (updated_at in microseconds, id): the feed's order


def user_id(index: int) -> str:
    return f"u{index:06d}"


def user_email(index: int) -> str:
    return f"user{index:06d}@upstream.example"


def generated_name(index: int, revision: int = 0) -> str:
    return f"User {index:06d}" if revision == 0 else f"User {index:06d} (rev {revision})"


def tombstone_count(count: int) -> int:
    """How many of the first ``count`` generated users are tombstones."""
    return count // TOMBSTONE_EVERY


def format_time(microseconds: int) -> str:
    """RFC 3339 in UTC with microseconds, e.g. ``2024-01-01T00:01:00.000000Z``."""
    moment = datetime.fromtimestamp(microseconds // 1_000_000, UTC).replace(
        microsecond=microseconds % 1_000_000
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Record:
    """One upstream user as the service stores it (tombstones keep their data; the feed hides it)."""

    index: int
    id: str
    email: str
    display_name: str
    updated_at: int
    deleted: bool
    revision: int = 0

    @property
    def key(self) -> FeedKey:
        return (self.updated_at, self.id)

    def as_json(self) -> dict[str, object]:
        if self.deleted:
            return {"id": self.id, "updated_at": format_time(self.updated_at), "deleted": True}
        return {
            "id": self.id,
            "email": self.email,
            "display_name": self.display_name,
            "updated_at": format_time(self.updated_at),
            "deleted": False,
        }


def generate(count: int) -> list[Record]:
    """The initial data set of ``count`` users, in feed order."""
    if not 0 <= count <= MAX_USERS:
        raise ValueError(f"the demo data set holds 0 to {MAX_USERS} users, not {count}")
    return [
        Record(
            index=index,
            id=user_id(index),
            email=user_email(index),
            display_name=generated_name(index),
            updated_at=_EPOCH_US + index * _SPACING_US,
            deleted=index % TOMBSTONE_EVERY == 0,
        )
        for index in range(1, count + 1)
    ]


class UnknownUsers(KeyError):
    """Some ids named in a touch do not exist."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(ids)
        self.ids = ids


class Dataset:
    """The mutable data set, safe to share between the threads of the server."""

    def __init__(self, count: int) -> None:
        self._lock = threading.Lock()
        self.reset(count)

    def reset(self, count: int) -> None:
        records = generate(count)
        with self._lock:
            self.count = count
            self._by_id = {record.id: record for record in records}
            self._keys: list[FeedKey] = [record.key for record in records]

    def changes_after(self, after: FeedKey | None, limit: int) -> tuple[list[Record], bool]:
        """Up to ``limit`` records strictly after ``after`` in feed order, and whether more follow."""
        with self._lock:
            start = 0 if after is None else bisect.bisect_right(self._keys, after)
            keys = self._keys[start : start + limit]
            has_more = start + limit < len(self._keys)
            return [self._by_id[user] for _, user in keys], has_more

    def pick(self, *, share: float, seed: int) -> list[str]:
        """A reproducible sample of ``share`` of the live users (at least one, if any live)."""
        with self._lock:
            live = sorted(user for user, record in self._by_id.items() if not record.deleted)
        if not live:
            return []
        size = min(len(live), max(1, round(share * len(live))))
        return sorted(random.Random(seed).sample(live, size))

    def touch(
        self,
        ids: list[str],
        *,
        deleted: bool | None = None,
        email: str | None = None,
        display_name: str | None = None,
    ) -> list[Record]:
        """Change users now: a new revision and display name, optionally deleted/restored or re-mailed.

        Each touched user gets its own, strictly increasing ``updated_at`` so
        the feed order among them is the order of ``ids``. ``display_name``
        replaces the generated "(rev N)" name (e.g. with one too long to mirror).
        """
        with self._lock:
            unknown = [user for user in ids if user not in self._by_id]
            if unknown:
                raise UnknownUsers(unknown)
            touched = []
            # "Now", but never before the newest change: a reader past the end
            # must see every later change.
            stamp = max(time.time_ns() // 1000, self._keys[-1][0] + 1) if self._keys else 0
            for user in dict.fromkeys(ids):
                old = self._by_id[user]
                new = replace(
                    old,
                    revision=old.revision + 1,
                    display_name=(
                        generated_name(old.index, old.revision + 1) if display_name is None else display_name
                    ),
                    updated_at=stamp,
                    deleted=old.deleted if deleted is None else deleted,
                    email=old.email if email is None else email,
                )
                stamp += 1
                self._by_id[user] = new
                touched.append(new)
            # One pass over the feed, not one list deletion per user.
            moved = {record.id for record in touched}
            self._keys = [key for key in self._keys if key[1] not in moved]
            self._keys.extend(record.key for record in touched)
            return touched

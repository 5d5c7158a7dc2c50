"""The sync's page writes (``users.repository.sync_db``, ``sync_copy``): new mirrors are stored exactly
as given, whatever characters their values hold, in pages larger than one ``COPY`` chunk."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import is_password_usable
from django.db import transaction
from django.utils import timezone

from users.models import User
from users.repository import sync_copy, sync_db

pytestmark = pytest.mark.django_db(transaction=True)

BOTH = pytest.mark.parametrize(
    "database", [pytest.param("postgresql"), pytest.param("sqlite", marks=pytest.mark.sqlite)]
)
#: Each of COPY's escaped characters, its NULL marker, a format placeholder and non-ASCII text.
AWKWARD = ["tab\there", "new\nline", "carriage\rreturn", "back\\slash", "\\N", "100%s %(x)s", "Zoë 𝄞\u00a0"]


def new_mirrors(count: int, *, awkward: bool) -> list[sync_db.NewMirror]:
    mirrors = []
    for index in range(count):
        name = f"{AWKWARD[index % len(AWKWARD)]} {index}" if awkward else f"User {index}"
        mirrors.append(
            sync_db.NewMirror(
                external_id=f"x{index}",
                username=f"ext-x{index}",
                email=f"u{index}@example.org",
                display_name=name,
            )
        )
    return mirrors


@BOTH
@pytest.mark.parametrize("awkward", [False, True], ids=["plain values", "escaped characters"])
def test_new_mirrors_are_stored_as_given(database, awkward):
    count = sync_copy.COPY_CHUNK_ROWS * 2 + 7  # three chunks, the last one short
    mirrors = new_mirrors(count, awkward=awkward)
    now = timezone.now()
    with transaction.atomic():
        sync_db.page_state(
            external_ids=[m.external_id for m in mirrors],
            emails=[m.email for m in mirrors],
            usernames=[m.username for m in mirrors],
        )
        sync_db.page_apply(sync_db.PageWrites(creates=mirrors), synced_at=now)

    stored = {
        user.external_id: user for user in User.objects.filter(source=User.Source.THIRD_PARTY).order_by("id")
    }
    assert len(stored) == count
    for mirror in mirrors:
        user = stored[mirror.external_id]
        assert (user.username, user.email, user.display_name) == (
            mirror.username,
            mirror.email,
            mirror.display_name,
        )
        assert (user.is_active, user.synced_at) == (True, now)
        assert not is_password_usable(user.password)
    assert len({user.password for user in stored.values()}) == count, "unusable passwords repeat"


def test_a_page_transaction_steers_the_planner_and_commits_asynchronously_only_itself():
    """The page's lookup sets its transaction's settings (SET LOCAL): the planner's, and an
    asynchronous commit; the connection's other transactions keep the server's settings."""
    from django.db import connection

    names = ("random_page_cost", "enable_hashjoin", "enable_mergejoin", "synchronous_commit")

    def current() -> tuple[str, ...]:
        with connection.cursor() as cursor:
            return tuple(cursor.execute(f"SHOW {name}").fetchone()[0] for name in names)

    before = current()
    assert before[3] == "on"
    with transaction.atomic():
        sync_db.page_state(external_ids=["x1"], emails=["u1@example.org"], usernames=["ext-x1"])
        assert current() == ("1.1", "off", "off", "off")
    assert current() == before

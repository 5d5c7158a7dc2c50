"""Rules of the users table itself: one address per person, case-insensitively
(``users_user_email_ci_unique``), with the email checks phrased so that its
``lower(email)`` index answers them, on PostgreSQL and SQLite."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from users.models import User
from users.repository import db


def _assert_one_address_per_person() -> None:
    User.objects.create_user(username="ann", email="ann@example.com")

    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user(username="ann2", email="ANN@example.com")

    assert db.email_taken("Ann@Example.com")
    assert not db.email_taken("Ann@Example.com", exclude_id=User.objects.get(username="ann").pk)
    assert not db.email_taken("bob@example.com")


@pytest.mark.django_db
def test_two_users_cannot_share_an_address_in_another_case():
    _assert_one_address_per_person()


@pytest.mark.django_db
def test_model_validation_names_the_taken_address_in_words():
    User.objects.create_user(username="ann", email="ann@example.com")

    with pytest.raises(ValidationError) as caught:
        User(username="ann2", email="ANN@example.com").validate_constraints()

    assert caught.value.messages == ["A user with this email address already exists."]


@pytest.mark.sqlite
@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "sqlite", reason="runs in the SQLite pass (make test-sqlite)")
def test_two_users_cannot_share_an_address_in_another_case_on_sqlite():
    _assert_one_address_per_person()


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL plans")
def test_the_email_check_is_answered_by_the_case_insensitive_index():
    User.objects.create_user(username="ann", email="ann@example.com")
    with CaptureQueriesContext(connection) as queries:
        assert db.email_taken("ANN@example.com")
    (statement,) = (query["sql"] for query in queries.captured_queries)

    with transaction.atomic(), connection.cursor() as cursor:
        # On a table this small a scan is cheaper; forbid it to see whether the index fits at all.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {statement}")
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "users_user_email_ci_unique" in plan, plan

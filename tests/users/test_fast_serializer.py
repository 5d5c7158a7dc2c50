"""FastModelSerializer (stayy/representation.py) answers exactly what DRF's ModelSerializer answers."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.utils import timezone
from rest_framework import serializers

from stayy.representation import FastModelSerializer
from users.models import User
from users.serializers import UserSerializer

pytestmark = pytest.mark.django_db


class DrfUserSerializer(serializers.ModelSerializer):
    """DRF's own ModelSerializer over the same fields: the reference output."""

    class Meta(UserSerializer.Meta):
        pass


class DrfMixedSources(serializers.ModelSerializer):
    """Fields the fast path must leave to DRF: a method, a dotted source, a method field, the whole row."""

    name = serializers.CharField(source="get_username", read_only=True)
    email_domain = serializers.SerializerMethodField()
    pk_text = serializers.CharField(source="pk", read_only=True)
    joined_year = serializers.IntegerField(source="date_joined.year", read_only=True)

    class Meta:
        model = User
        fields = ["id", "name", "email_domain", "pk_text", "joined_year", "last_login"]

    def get_email_domain(self, user: User) -> str:
        return user.email.rpartition("@")[2]


class MixedSources(FastModelSerializer[User], DrfMixedSources):
    """The same fields on the fast base (its methods come first)."""


@pytest.fixture
def users(make_user) -> list[User]:
    make_user("ann", display_name="Ann Archer", is_staff=True)
    make_user("bob", is_active=False, last_login=timezone.now() - datetime.timedelta(days=3))
    make_user("cat", source=User.Source.THIRD_PARTY, external_id="u-1", synced_at=timezone.now())
    return list(User.objects.order_by("id"))


def test_the_user_representation_is_drf_modelserializer_output(users: list[User]) -> None:
    expected = DrfUserSerializer(users, many=True).data
    assert UserSerializer(users, many=True).data == expected
    assert [UserSerializer(user).data for user in users] == expected
    # The rows differ where they should: none-or-set timestamps, both sources, both states.
    assert {row["last_login"] is None for row in expected} == {True, False}
    assert {row["synced_at"] is None for row in expected} == {True, False}
    assert {row["source"] for row in expected} == {"local", "third_party"}


def test_timestamps_are_iso_8601_in_utc(users: list[User]) -> None:
    row = UserSerializer(users[1]).data
    assert row["last_login"] == users[1].last_login.isoformat().replace("+00:00", "Z")
    assert row["created_at"].endswith("Z")


def test_other_sources_go_through_drf(users: list[User]) -> None:
    assert MixedSources(users, many=True).data == DrfMixedSources(users, many=True).data
    assert MixedSources(users[0]).data["email_domain"] == "example.com"
    assert MixedSources(users[0]).data["name"] == "ann"


def test_an_instance_that_is_not_of_the_model_goes_through_drf(users: list[User]) -> None:
    row: dict[str, Any] = DrfUserSerializer(users[0]).data
    as_mapping = {field: getattr(users[0], field) for field in UserSerializer.Meta.fields}
    assert UserSerializer(as_mapping).data == row


def test_each_serializer_gets_its_own_copy_of_the_fields_built_once() -> None:
    first, second = UserSerializer().fields, UserSerializer().fields
    assert list(first) == list(second) == UserSerializer.Meta.fields
    assert first["email"] is not second["email"]
    assert first["email"].parent is not second["email"].parent

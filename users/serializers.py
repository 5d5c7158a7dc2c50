"""Serializers of the users API: one output shape per resource, one strict input shape per operation.

Input serializers only parse and check the form of a request; rules that need
the database (a free email address) live in :mod:`users.services`. The
password is never part of any output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.validators import UnicodeUsernameValidator
from rest_framework import serializers

from stayy.representation import FastModelSerializer
from users.models import User


class UserSerializer(FastModelSerializer[User]):
    """A user as every endpoint answers it (the list renders 50 to 200 at a time, hence the fast base)."""

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "email",
            "display_name",
            "source",
            "external_id",
            "is_active",
            "is_staff",
            "last_login",
            "synced_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class StrictInputSerializer(serializers.Serializer):
    """Rejects fields it does not know instead of silently dropping them.

    A client that sends ``is_staff`` to an endpoint that cannot change it gets a
    400 saying so, not a 200 that suggests the change was made.
    """

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                allowed = ", ".join(sorted(self.fields))
                message = f"This field cannot be set here; allowed fields: {allowed}."
                raise serializers.ValidationError({name: [message] for name in unknown})
        return super().to_internal_value(data)


class UserCreateSerializer(StrictInputSerializer):
    username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    email = serializers.EmailField(max_length=254)
    display_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    password = serializers.CharField(
        write_only=True,
        required=False,
        trim_whitespace=False,
        style={"input_type": "password"},
        help_text="Optional; without one the user cannot sign in with a password.",
    )
    is_staff = serializers.BooleanField(required=False, default=False)


class UserUpdateSerializer(StrictInputSerializer):
    email = serializers.EmailField(max_length=254, required=False)
    display_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)
    is_staff = serializers.BooleanField(required=False)


class ProfileUpdateSerializer(StrictInputSerializer):
    email = serializers.EmailField(max_length=254, required=False)
    display_name = serializers.CharField(max_length=150, required=False, allow_blank=True)


class AuthTokenSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(
        max_length=4096, trim_whitespace=False, write_only=True, style={"input_type": "password"}
    )


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True, help_text="Send as `Authorization: Token <token>`.")
    expiry = serializers.DateTimeField(read_only=True, help_text="When the token stops working.")


class UserStatsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    active = serializers.IntegerField()
    inactive = serializers.IntegerField()
    by_source = serializers.DictField(child=serializers.IntegerField(), help_text="Users per source.")
    new_last_24h = serializers.IntegerField()
    new_last_7d = serializers.IntegerField()
    computed_at = serializers.DateTimeField()


class JobRunQueuedSerializer(serializers.Serializer):
    run_id = serializers.IntegerField()
    status = serializers.CharField()
    url = serializers.URLField(help_text="Where to follow the run in the jobs API.")


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()

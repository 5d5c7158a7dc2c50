"""Serializers of the users API: one output shape per resource, one strict input shape per operation.

Input serializers only parse and check the form of a request; rules that need
the database (a free email address) live in :mod:`users.services`. The
password is never part of any output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.validators import RegexValidator
from django.http import QueryDict
from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers

from users.models import User


class UserSerializer(serializers.ModelSerializer[User]):
    """A user as every endpoint answers it."""

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
            "upstream_deleted",
            "deactivated_at",
            "deactivated_by",
            "version",
            "last_login",
            "synced_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class StrictInputSerializer(serializers.Serializer):
    """Rejects fields it does not know instead of silently dropping them, and reads a form as JSON.

    A client that sends ``is_staff`` to an endpoint that cannot change it gets a
    400 saying so, not a 200 that suggests the change was made (the schema says
    so too: ``additionalProperties: false``, :class:`StrictInputSchema`).

    A form body (urlencoded or multipart) is read like the same object in JSON:
    DRF's HTML-form rules would skip an empty ``email`` and read a boolean left
    out as ``false``. A field given more than once is refused.
    """

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, QueryDict):
            repeated = sorted(name for name, values in data.lists() if len(values) > 1)
            if repeated:
                raise serializers.ValidationError({name: ["Give this field once."] for name in repeated})
            data = data.dict()
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                allowed = ", ".join(sorted(self.fields))
                message = f"This field cannot be set here; allowed fields: {allowed}."
                raise serializers.ValidationError({name: [message] for name in unknown})
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """``true`` or ``false`` (JSON's, or those words in a form), as the schema says; not DRF's ``1``,
    ``"on"``, ``"yes"``."""

    TRUE_VALUES = {True, "true"}
    FALSE_VALUES = {False, "false"}
    NULL_VALUES: set[Any] = set()


class StrictInputSchema(OpenApiSerializerExtension):
    """Every strict input shape is documented as closed (``additionalProperties: false``), and its free
    text as holding no NUL, which every DRF ``CharField`` refuses."""

    target_class = StrictInputSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> Any:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        properties = {name: _without_nul(value) for name, value in schema.get("properties", {}).items()}
        return {**schema, "properties": properties, "additionalProperties": False}


def _without_nul(prop: dict[str, Any]) -> dict[str, Any]:
    if (
        prop.get("type") != "string"
        or {"pattern", "enum"} & set(prop)
        or prop.get("format", "password") != "password"
    ):
        return prop
    return {**prop, "pattern": "^[^\\u0000]*$"}


VERSION_HELP = (
    "The `version` of the user your change is based on: if the user changed since (an edit, the sync),"
    " the change is refused with a 409. Leave it out to change the user whatever its version."
)


class UserCreateSerializer(StrictInputSerializer):
    username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    email = serializers.EmailField(max_length=254)
    display_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    password = serializers.CharField(
        write_only=True,
        required=False,
        trim_whitespace=False,
        # What the password validators check that a schema can say; too common a password, or one
        # too like the username, is still a 400.
        min_length=8,
        validators=[RegexValidator(r"\D", message="This password is entirely numeric.")],
        style={"input_type": "password"},
        help_text="Optional; without one the user cannot sign in with a password. At least 8 characters,"
        " not all digits, not a common password, not like the username or email.",
    )
    is_staff = StrictBooleanField(required=False, default=False)


class ProfileUpdateSerializer(StrictInputSerializer):
    version = serializers.IntegerField(min_value=1, required=False, help_text=VERSION_HELP)
    email = serializers.EmailField(
        max_length=254, required=False, help_text="Not of a mirrored user (the sync sets it): 409."
    )
    display_name = serializers.CharField(
        max_length=150,
        required=False,
        allow_blank=True,
        help_text="Not of a mirrored user (the sync sets it): 409.",
    )


class UserUpdateSerializer(ProfileUpdateSerializer):
    """What staff may change of a user: the profile's fields, and whether it is active or staff."""

    is_active = StrictBooleanField(
        required=False,
        help_text="`false` deactivates the user here, and the sync keeps it so; `true` lifts that"
        " (409 for a mirror the upstream deleted).",
    )
    is_staff = StrictBooleanField(required=False)


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

"""Query-string filters of the user list (``?is_active=`` and ``?source=``).

A value the schema does not allow (``is_active=null``, ``source=x``, an empty
one) is a 400 naming the filter, not a filter silently left out.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms

from users.models import User


class StrictBooleanField(forms.Field):
    """``true`` or ``false``, as the schema says; anything else is an error (Django's reads it as "any")."""

    def to_python(self, value: Any) -> bool | None:
        if value is None:  # not in the query string
            return None
        if value in ("true", "false"):
            return value == "true"
        raise forms.ValidationError("Give true or false.", code="invalid")


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class StrictChoiceField(django_filters.fields.ChoiceField):
    """One of the choices; present but empty (``?source=``) is an error, not "any"."""

    def to_python(self, value: Any) -> Any:
        if value == "":
            raise forms.ValidationError("Give one of the choices.", code="invalid_choice")
        return super().to_python(value)


class StrictChoiceFilter(django_filters.ChoiceFilter):
    field_class = StrictChoiceField


class UserFilter(django_filters.FilterSet):
    is_active = StrictBooleanFilter()
    source = StrictChoiceFilter(choices=User.Source.choices)

    class Meta:
        model = User
        fields = ["is_active", "source"]

"""Query-string filters of the user list (``?is_active=`` and ``?source=``).

A value the schema does not allow (``is_active=null``, ``source=x``) is a 400
naming the filter, not a filter silently left out.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms

from users.models import User


class StrictBooleanField(forms.Field):
    """``true`` or ``false``, as the schema says; anything else is an error (Django's reads it as "any")."""

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        if value in ("true", "false"):
            return value == "true"
        raise forms.ValidationError("Give true or false.", code="invalid")


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class UserFilter(django_filters.FilterSet):
    is_active = StrictBooleanFilter()
    source = django_filters.ChoiceFilter(choices=User.Source.choices)

    class Meta:
        model = User
        fields = ["is_active", "source"]

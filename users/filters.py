"""Query-string filters of the user list (``?is_active=`` and ``?source=``)."""

from __future__ import annotations

import django_filters

from users.models import User


class UserFilter(django_filters.FilterSet):
    is_active = django_filters.BooleanFilter()
    source = django_filters.ChoiceFilter(choices=User.Source.choices)

    class Meta:
        model = User
        fields = ["is_active", "source"]

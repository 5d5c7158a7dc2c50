"""A ``ModelSerializer`` for hot read paths: DRF's output, for a fraction of its CPU.

DRF's ``ModelSerializer`` spends most of a list response on bookkeeping, not
on converting values (benchmark 3 in bench/README.md): it introspects the
model to build its fields for every serializer it creates, looks up the
current timezone (an ``asgiref`` context-local) for every timestamp, and reads
every value through the generic ``Field.get_attribute`` (dotted sources,
mappings, callables). :class:`FastModelSerializer` keeps DRF's fields and
their ``to_representation`` and drops the bookkeeping:

* the fields are built from the model once per class and deep-copied for each
  serializer, as DRF already does with declared fields;
* timestamps are rendered in the default timezone (``TIME_ZONE``), fixed when
  the field is built: what DRF renders while no timezone is activated, and
  this service activates none;
* a model instance's plain column values are read with one ``getattr`` each;
  any other source (dotted, ``*``, a method, a related object) and any
  instance that is not of the model go through DRF's own code.

Only for serializers whose fields do not depend on the context (the request,
the view): every instance of a class gets copies of the same fields.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, TypeVar

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.functional import cached_property
from rest_framework import serializers
from rest_framework.fields import Field, SkipField
from rest_framework.relations import PKOnlyObject

_M = TypeVar("_M", bound=models.Model)

# Fields built by ModelSerializer.get_fields(), per serializer class (classes live as long as the process).
_BUILT_FIELDS: dict[type[serializers.ModelSerializer[Any]], dict[str, Field[Any, Any, Any, Any]]] = {}


class FastModelSerializer(serializers.ModelSerializer[_M]):
    """``ModelSerializer`` with its fields built once per class and rows read attribute by attribute."""

    def get_fields(self) -> dict[str, Field[Any, Any, Any, Any]]:
        cls = type(self)
        built = _BUILT_FIELDS.get(cls)
        if built is None:
            built = _BUILT_FIELDS[cls] = super().get_fields()
        return copy.deepcopy(built)

    def build_standard_field(
        self, field_name: str, model_field: models.Field[Any, Any]
    ) -> tuple[type[Field[Any, Any, Any, Any]], dict[str, Any]]:
        field_class, field_kwargs = super().build_standard_field(field_name, model_field)
        if settings.USE_TZ and issubclass(field_class, serializers.DateTimeField):
            field_kwargs.setdefault("default_timezone", timezone.get_default_timezone())
        return field_class, field_kwargs

    @cached_property
    def _row_plan(self) -> list[tuple[str, str | None, Field[Any, Any, Any, Any]]]:
        """(output name, the column's attribute or None for DRF's own lookup, field) per readable field."""
        model: type[models.Model] = self.Meta.model
        columns = {field.attname for field in model._meta.concrete_fields if not field.is_relation}
        plan: list[tuple[str, str | None, Field[Any, Any, Any, Any]]] = []
        for field in self._readable_fields:
            plain = (
                len(field.source_attrs) == 1
                and field.source_attrs[0] in columns
                and type(field).get_attribute is Field.get_attribute
            )
            plan.append((str(field.field_name), field.source_attrs[0] if plain else None, field))
        return plan

    def to_representation(self, instance: Any) -> dict[str, Any]:
        if not isinstance(instance, self.Meta.model) or isinstance(instance, Mapping):
            return super().to_representation(instance)
        ret: dict[str, Any] = {}
        for name, attname, field in self._row_plan:
            if attname is not None:
                value = getattr(instance, attname)
            else:
                try:
                    value = field.get_attribute(instance)
                except SkipField:
                    continue
                if isinstance(value, PKOnlyObject) and value.pk is None:
                    value = None
            ret[name] = None if value is None else field.to_representation(value)
        return ret

"""Page-number pagination whose ``?page_size=`` is checked as the schema states it.

DRF falls back to the default page size for a value it cannot read
(``page_size=null``) and caps one that is too large; here either is a 400
naming the parameter, and the schema gives its range.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request


class StrictPageNumberPagination(PageNumberPagination):
    """``?page=`` and ``?page_size=`` (1 to ``max_page_size``; anything else is a 400)."""

    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int | None:
        values = request.query_params.getlist(self.page_size_query_param)
        if not values:
            return self.page_size
        message = f"Give one whole number from 1 to {self.max_page_size}."
        if len(values) > 1 or not (values[0].isascii() and values[0].isdigit()):
            raise ValidationError({self.page_size_query_param: [message]})
        size = int(values[0])
        if not 1 <= size <= (self.max_page_size or size):
            raise ValidationError({self.page_size_query_param: [message]})
        return size

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
        return parameters

"""The OpenAPI schema of the users API generates without warnings and validates."""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema


def test_users_api_schema_is_clean():
    GENERATOR_STATS.reset()
    generator = SchemaGenerator(patterns=[path("api/", include("users.urls"))])

    schema = generator.get_schema(request=None, public=True)

    assert not GENERATOR_STATS, "drf-spectacular warned about the users API (see the log above)"
    validate_schema(schema)
    assert {
        "/api/auth/token/",
        "/api/users/",
        "/api/users/{id}/",
        "/api/users/me/",
        "/api/users/stats/",
    } <= set(schema["paths"])
    list_params = {p["name"] for p in schema["paths"]["/api/users/"]["get"]["parameters"]}
    assert {"is_active", "source", "search", "ordering", "page", "page_size"} <= list_params

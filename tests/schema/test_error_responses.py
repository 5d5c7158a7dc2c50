"""The OpenAPI document admits the errors DRF answers with: 400, 401, 403 and 404, as JSON."""

from __future__ import annotations

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    return schema


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "patch", "put", "delete")
    ]


def test_every_operation_that_needs_a_token_documents_401_and_403(document):
    protected = [op for op in operations(document) if {} not in op[2].get("security", [{}])]
    assert len(protected) > 10
    for path, method, operation in protected:
        for code in ("401", "403"):
            content = operation["responses"][code]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/ErrorDetail"}, (method, path, code)


def test_operations_with_an_id_or_a_page_document_404_and_with_input_400(document):
    for path, method, operation in operations(document):
        parameters = operation.get("parameters", [])
        if "{" in path or any(p["name"] == "page" for p in parameters):
            assert "404" in operation["responses"], (method, path)
        if operation.get("requestBody") or any(p["in"] == "query" for p in parameters):
            assert "400" in operation["responses"], (method, path)


def test_the_sign_in_documents_429_and_public_operations_no_401(document):
    sign_in = document["paths"]["/api/auth/token/"]["post"]
    assert {"200", "400", "429"} <= set(sign_in["responses"])
    assert "401" not in sign_in["responses"]
    request = document["components"]["schemas"]["AuthTokenRequest"]
    assert request["properties"]["username"]["minLength"] == 1
    assert "401" in document["paths"]["/api/auth/token/"]["delete"]["responses"]

"""The error answers every API operation can give, added to the OpenAPI document in one place.

drf-spectacular documents what a view declares; the errors DRF itself
produces (a 400 for invalid input, 401 without usable credentials, 403 without
permission, 404 for a missing object or page) would otherwise be missing, and
clients (and schemathesis) would find answers the schema does not admit.
Registered as a ``POSTPROCESSING_HOOKS`` entry in ``config/settings.py``.
"""

from __future__ import annotations

from typing import Any

DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
# DRF's validation errors: field name (or non_field_errors, or detail) -> messages.
INVALID = {"type": "object", "additionalProperties": {}}

_ERRORS = {
    "400": ("Invalid input: the body names each field and what is wrong with it.", "ValidationError"),
    "401": ("No credentials, or a token that is unknown or belongs to an inactive user.", "ErrorDetail"),
    "403": ("Signed in, but not allowed to do this.", "ErrorDetail"),
    "404": ("No such object, or no such page of results.", "ErrorDetail"),
}
_METHODS = ("get", "put", "post", "patch", "delete")


def _response(code: str) -> dict[str, Any]:
    description, component = _ERRORS[code]
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
    }


def _codes_for(operation: dict[str, Any]) -> list[str]:
    parameters = operation.get("parameters", [])
    codes = []
    if operation.get("requestBody") or any(p.get("in") == "query" for p in parameters):
        codes.append("400")
    security = operation.get("security", [])
    if security and {} not in security:
        codes += ["401", "403"]
    if any(p.get("in") == "path" or p.get("name") == "page" for p in parameters):
        codes.append("404")
    return codes


def document_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict:
    """Add the 400/401/403/404 answers an operation can give wherever its view left them out."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorDetail", DETAIL)
    schemas.setdefault("ValidationError", INVALID)
    for path_item in result.get("paths", {}).values():
        for method in _METHODS:
            operation = path_item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for code in _codes_for(operation):
                if code not in responses:
                    responses[code] = _response(code)
                elif "content" not in responses[code]:
                    # A view documented the code in words only; the body is still DRF's.
                    responses[code]["content"] = _response(code)["content"]
    return result

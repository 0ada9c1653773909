"""The security schemes in the OpenAPI document: `X-API-Key`, bearer, `?api_key=`, on
every operation but the public paths, with their 401 and 403 answers."""

from __future__ import annotations

from typing import Any

from armillary_auth.settings import AuthSettings

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def document_security(doc: dict[str, Any], settings: AuthSettings) -> dict[str, Any]:
    """Mark `doc` (in place, idempotent) and return it."""
    schemes = doc.setdefault("components", {}).setdefault("securitySchemes", {})
    if "APIKeyHeader" in schemes:
        return doc
    schemes["APIKeyHeader"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    schemes["BearerAuth"] = {"type": "http", "scheme": "bearer",
                             "description": "An API key, or a JWT when [plugins.auth.jwt] "
                                            "is configured"}
    requirement: list[dict[str, list[str]]] = [{"APIKeyHeader": []}, {"BearerAuth": []}]
    if settings.query_param:
        schemes["APIKeyQuery"] = {"type": "apiKey", "in": "query",
                                  "name": settings.query_param,
                                  "description": "For EventSource, which cannot send headers"}
        requirement.append({"APIKeyQuery": []})
    doc["security"] = requirement
    public = set(settings.public_paths)
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            if path in public:
                operation["security"] = []
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault("401", {"description": "Missing or wrong key or token "
                                                        "(`unauthorized`, `invalid_token`)",
                                         "content": _ERROR})
            responses.setdefault("403", {"description": "The key lacks the scope "
                                                        "(`insufficient_scope`)",
                                         "content": _ERROR})
    return doc

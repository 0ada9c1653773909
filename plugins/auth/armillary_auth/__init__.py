"""Armillary plugin `auth`: API keys (hashed, scoped) and optional JWT, with per-key
ownership.

- `AuthMiddleware` (`armillary_auth.middleware`) in front of every route but the public
  paths: 401 `unauthorized` / `invalid_token`, 403 `insufficient_scope`
- the principal is `armillary.current_principal()` while a route runs; stores stamp it as
  the owner of runs and conversations
- the security schemes in the OpenAPI document (`openapi_document` hook: served and
  `armillary openapi` alike)
- `armillary auth new-key | hash-key`
- settings in `[plugins.auth]` (`armillary_auth.settings.AuthSettings`)
"""

from __future__ import annotations

from typing import Any

from armillary import RegisterCommand, RegisterMiddleware, hookimpl
from armillary_auth.settings import AuthSettings

#: inside the edge (CORS at 10, so refusals carry CORS headers) and the kernel's body
#: limits (50), outside rate limits (which count per principal)
ORDER = 90


@hookimpl
def settings_model() -> type[AuthSettings]:
    return AuthSettings


@hookimpl
def register_middleware(register: RegisterMiddleware, settings: Any) -> None:
    from armillary_auth.middleware import AuthMiddleware

    register(AuthMiddleware, order=ORDER, settings=settings)


@hookimpl
def openapi_document(document: dict[str, Any], settings: AuthSettings) -> None:
    from armillary_auth.openapi import document_security

    document_security(document, settings)


@hookimpl
def register_commands(register: RegisterCommand) -> None:
    from armillary_auth.cli import auth

    register(auth)

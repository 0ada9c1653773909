"""`[plugins.auth]`: API keys (hashed or from the environment), optional JWT, public paths."""

from __future__ import annotations

import re
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

#: what a key's `key_hash` looks like: `armillary auth hash-key` prints one
HASH_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")
#: the routes anyone may call (health for load balancers, the API's own documents)
PUBLIC_PATHS = ["/health", "/v1/health", "/docs", "/docs/oauth2-redirect", "/redoc",
                "/openapi.json"]


class KeySettings(BaseModel):
    """One API key: a `name` (what owns its runs and conversations), its scopes, and
    either `key_hash` (`sha256:<hex>`, what belongs in a file) or `key` (the key itself,
    best as `{ "$env" = "NAME" }`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    key: SecretStr | None = None
    key_hash: str | None = None
    scopes: list[str] = Field(default_factory=lambda: ["read", "submit"])

    @field_validator("key_hash")
    @classmethod
    def _hash_format(cls, value: str | None) -> str | None:
        if value is not None and not HASH_PATTERN.match(value.strip().lower()):
            raise ValueError("expected sha256:<64 hex digits> (armillary auth hash-key "
                             "prints one)")
        return value.strip().lower() if value is not None else None

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if (self.key is None) == (self.key_hash is None):
            raise ValueError(f"key {self.name!r}: give exactly one of key_hash or key")
        return self


class JWTSettings(BaseModel):
    """Bearer tokens that are JWTs, verified with PyJWT: a shared `secret` (HS*) or the
    issuer's `jwks_url` (RS*/ES*). `exp` is required; `iss`/`aud` when set here."""

    model_config = ConfigDict(extra="forbid")

    secret: SecretStr | None = None
    jwks_url: str | None = None
    algorithms: list[str] = Field(default_factory=lambda: ["HS256"])
    issuer: str | None = None
    audience: str | None = None
    leeway_seconds: float = Field(default=30, ge=0)
    #: the claim naming the principal (owner of what it starts)
    name_claim: str = "sub"
    #: a space-separated string or a list of scopes
    scopes_claim: str = "scope"
    #: scopes of a token that carries none
    default_scopes: list[str] = Field(default_factory=lambda: ["read", "submit"])

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        if (self.secret is None) == (self.jwks_url is None):
            raise ValueError("give exactly one of secret or jwks_url")
        return self


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[KeySettings] = Field(default_factory=list)
    #: an environment variable with comma-separated keys (the Pori seed's); "" for none
    env_keys: str = "PORI_API_KEYS"
    #: scopes of the keys from `env_keys` (add "admin" for the seed's "a key grants full
    #: access": an admin key sees every key's runs)
    env_key_scopes: list[str] = Field(default_factory=lambda: ["read", "submit"])
    jwt: JWTSettings | None = None
    #: exact paths served without a key
    public_paths: list[str] = Field(default_factory=lambda: list(PUBLIC_PATHS))
    #: path prefixes that need the `admin` scope whatever the method
    admin_paths: list[str] = Field(default_factory=list)
    #: `?<name>=<key>` is accepted (EventSource cannot send headers); "" to refuse it
    query_param: str = "api_key"
    #: `Sec-WebSocket-Protocol: <name>, <key>`: the marker (echoed) and then the key
    websocket_subprotocol: str = "api-key"
    #: the scope a WebSocket needs (its messages may steer: "submit" to require more)
    websocket_scope: str = "read"

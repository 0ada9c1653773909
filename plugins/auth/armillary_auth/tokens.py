"""JWT bearer tokens (PyJWT, imported when the first token arrives): a shared secret or
the issuer's JWKS, `exp` required, `iss`/`aud` checked when configured."""

from __future__ import annotations

import asyncio
from typing import Any

from armillary import Principal
from armillary_auth.settings import JWTSettings


class TokenError(Exception):
    """The token is not valid; the message says why (never the token)."""


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


class JWTVerifier:
    def __init__(self, settings: JWTSettings) -> None:
        self.settings = settings
        self._jwks: Any = None  # jwt.PyJWKClient, made on first use (it caches keys)

    async def verify(self, token: str) -> Principal:
        import jwt

        s = self.settings
        try:
            if s.jwks_url is not None:
                if self._jwks is None:
                    self._jwks = jwt.PyJWKClient(s.jwks_url, cache_keys=True, lifespan=300,
                                                 timeout=10)
                # urllib under the hood: off the event loop (cached after the first fetch)
                key: Any = (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt,
                                                    token)).key
            else:
                key = s.secret.get_secret_value()  # type: ignore[union-attr]
            claims = jwt.decode(token, key, algorithms=s.algorithms, audience=s.audience,
                                issuer=s.issuer, leeway=s.leeway_seconds,
                                options={"require": ["exp"],
                                         "verify_aud": s.audience is not None})
        except jwt.PyJWKClientError as exc:
            raise TokenError(f"cannot get the token's signing key: {exc}") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        name = claims.get(s.name_claim)
        if not isinstance(name, str) or not name:
            raise TokenError(f"invalid token: no {s.name_claim!r} claim")
        raw = claims.get(s.scopes_claim)
        scopes = raw.split() if isinstance(raw, str) else \
            [x for x in raw if isinstance(x, str)] if isinstance(raw, list) else \
            s.default_scopes
        return Principal(name=name, scopes=frozenset(scopes), via="jwt")

"""API keys: hashing (`sha256:<hex>`), the key ring looked up by hash, key generation."""

from __future__ import annotations

import hashlib
import os
import secrets

from armillary import Principal
from armillary_auth.settings import AuthSettings


def hash_key(key: str) -> str:
    """`sha256:<hex>` of a key: what `key_hash` holds. Unsalted on purpose: API keys are
    long random strings (see `new_key`), so a dictionary attack finds nothing, and one
    hash per request keeps the check at a microsecond."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh key: 32 random bytes, URL-safe (also valid as a WebSocket sub-protocol)."""
    return "ak_" + secrets.token_urlsafe(32)


class KeyRing:
    """Every configured key by its hash. `find(key)` hashes what the client sent and
    looks the hash up: the secret itself is never compared."""

    def __init__(self, settings: AuthSettings, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.by_hash: dict[str, Principal] = {}
        for spec in settings.keys:
            digest = spec.key_hash or hash_key(spec.key.get_secret_value())  # type: ignore[union-attr]
            self._add(digest, Principal(name=spec.name, scopes=frozenset(spec.scopes)))
        raw = env.get(settings.env_keys, "") if settings.env_keys else ""
        for key in (k.strip() for k in raw.split(",")):
            if key:
                digest = hash_key(key)
                # named after its hash: stable across restarts and reorderings, not secret
                self._add(digest, Principal(name=f"key-{digest[7:19]}",
                                            scopes=frozenset(settings.env_key_scopes)))

    def _add(self, digest: str, principal: Principal) -> None:
        if digest in self.by_hash and self.by_hash[digest].name != principal.name:
            raise ValueError(f"keys {self.by_hash[digest].name!r} and {principal.name!r} "
                             f"are the same key")
        self.by_hash[digest] = principal

    def find(self, key: str) -> Principal | None:
        return self.by_hash.get(hash_key(key))

    def __len__(self) -> int:
        return len(self.by_hash)

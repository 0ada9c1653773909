"""Serve auth + tasks + sse + chat with a scripted provider on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import armillary_auth
import armillary_chat
import armillary_sse
import armillary_tasks
import httpx
from armillary_auth.keys import hash_key

from armillary.testing import ProviderPlugin, ScriptedProvider, Turn, make_app, serve_app

ALICE, BOB, ROOT, READER = "alice-key-0123456789", "bob-key-0123456789", \
    "root-key-0123456789", "reader-key-0123456789"

KEYS: list[dict[str, Any]] = [
    {"name": "alice", "key_hash": hash_key(ALICE)},
    {"name": "bob", "key": BOB},
    {"name": "root", "key_hash": hash_key(ROOT), "scopes": ["admin"]},
    {"name": "reader", "key_hash": hash_key(READER), "scopes": ["read"]},
]


@asynccontextmanager
async def auth_server(turns: list[Turn | str] | None = None, *,
                      auth: Mapping[str, Any] | None = None,
                      extra: Mapping[str, object] | None = None,
                      config: Mapping[str, Any] | None = None
                      ) -> AsyncIterator[tuple[str, httpx.AsyncClient, Any]]:
    """(url, client without a key, app)."""
    provider = ScriptedProvider(turns)
    plugins: dict[str, object] = {"auth": armillary_auth, "tasks": armillary_tasks,
                                  "sse": armillary_sse, "chat": armillary_chat,
                                  "scripted": ProviderPlugin(provider), **(extra or {})}
    settings = {"keys": KEYS, **(auth or {})}
    cfg: dict[str, Any] = {"plugins": {"auth": settings}, **(config or {})}
    app = make_app(plugins, config=cfg)
    async with serve_app(app, ws="websockets-sansio") as url, \
            httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield url, client, app


def key(k: str) -> dict[str, str]:
    return {"X-API-Key": k}

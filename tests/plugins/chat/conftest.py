"""Serve an app assembled from the chat plugin (and friends) on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import armillary_agents
import armillary_chat
import httpx
import pytest
from fastapi import FastAPI

from armillary.testing import ProviderPlugin, ScriptedProvider, Turn, make_app, serve_app


@dataclass
class Served:
    app: FastAPI
    url: str
    client: httpx.AsyncClient
    provider: ScriptedProvider

    @property
    def kernel(self) -> Any:
        return self.app.state.kernel


ChatServer = Callable[..., AbstractAsyncContextManager[Served]]


@pytest.fixture
def chat_server() -> ChatServer:
    """`async with chat_server([Turn(...)], config={...}) as s:` → a served app with the chat
    and agents plugins and a scripted default provider (`provider=` brings your own)."""

    @asynccontextmanager
    async def start(turns: list[Turn | str] | None = None, *,
                    config: Mapping[str, Any] | None = None,
                    extra: Mapping[str, object] | None = None,
                    provider: ScriptedProvider | None = None) -> AsyncIterator[Served]:
        provider = provider or ScriptedProvider(turns)
        app = make_app({"chat": armillary_chat, "agents": armillary_agents,
                        "scripted": ProviderPlugin(provider), **(extra or {})},
                       config=config)
        async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
            yield Served(app, url, client, provider)

    return start

"""Serve an app assembled from the chat plugin (and friends) on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import armillary_agents
import armillary_chat
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from armillary import hookimpl
from armillary.testing import ScriptedProvider, Turn, free_port, make_app


class ProviderPlugin:
    """Registers scripted providers; the first is the default."""

    def __init__(self, *providers: ScriptedProvider) -> None:
        self.providers = providers

    @hookimpl
    def register_providers(self, register):  # type: ignore[no-untyped-def]
        for i, p in enumerate(self.providers):
            register(p, default=i == 0)


@dataclass
class Served:
    app: FastAPI
    url: str
    client: httpx.AsyncClient
    provider: ScriptedProvider

    @property
    def kernel(self) -> Any:
        return self.app.state.kernel


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run `app` under uvicorn on a free loopback port for the block."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on",
                                           log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


ChatServer = Callable[..., AbstractAsyncContextManager[Served]]


@pytest.fixture
def chat_server() -> ChatServer:
    """`async with chat_server([Turn(...)], config={...}) as s:` → a served app with the chat
    and agents plugins and a scripted default provider."""

    @asynccontextmanager
    async def start(turns: list[Turn | str] | None = None, *,
                    config: Mapping[str, Any] | None = None,
                    extra: Mapping[str, object] | None = None) -> AsyncIterator[Served]:
        provider = ScriptedProvider(turns)
        app = make_app({"chat": armillary_chat, "agents": armillary_agents,
                        "scripted": ProviderPlugin(provider), **(extra or {})},
                       config=config)
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
            yield Served(app, url, client, provider)

    return start

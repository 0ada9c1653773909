"""The agents + tasks plugins over the real Ollama plugin and the Ollama test server,
served on a loopback port (the app's objects at hand)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import armillary_agents
import armillary_ollama
import armillary_tasks
import httpx
from fastapi import APIRouter

from armillary import hookimpl
from armillary.testing import make_app, serve_app
from tests.support.ollama_server import OllamaTestServer

#: routes the tests use to see the metrics: one that fails, one that takes its time
test_routes = APIRouter()


@test_routes.get("/test/boom")
async def boom() -> None:
    raise RuntimeError("a bug")


@test_routes.get("/test/nap")
async def nap(seconds: float = 0.3) -> dict[str, float]:
    await asyncio.sleep(seconds)
    return {"slept": seconds}


class RoutesForTests:
    @hookimpl
    def register_routers(self, register):  # type: ignore[no-untyped-def]
        register(test_routes)


@dataclass
class Served:
    app: Any
    url: str
    client: httpx.AsyncClient
    ollama: OllamaTestServer

    @property
    def kernel(self) -> Any:
        return self.app.state.kernel

    @property
    def state(self) -> Any:
        return self.kernel.state["agents"]

    def ws_url(self, path: str = "/ws/agent-updates") -> str:
        return self.url.replace("http://", "ws://") + path

    async def execute(self, agent: str = "default", **body: Any) -> httpx.Response:
        return await self.client.post(f"/agents/{agent}/execute", json=body)


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if check():
            return True
        await asyncio.sleep(0.01)
    return check()


@asynccontextmanager
async def seed_server(ollama: OllamaTestServer, *, agents: Mapping[str, Any] | None = None,
                      config: Mapping[str, Any] | None = None,
                      extra: Mapping[str, object] | None = None) -> AsyncIterator[Served]:
    settings = {"ollama": {"base_url": ollama.url, "model": "llama3.2", "connect_timeout": 2},
                "agents": dict(agents or {})}
    app = make_app({"ollama": armillary_ollama, "tasks": armillary_tasks,
                    "agents": armillary_agents, "test-routes": RoutesForTests(),
                    **(extra or {})},
                   config={"plugins": settings, **(config or {})})
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield Served(app, url, client, ollama)

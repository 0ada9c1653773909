"""Serve the realtime plugin's upstream routes against the OpenAI test server.

`upstream_app(server, ...)` assembles the real `openai` plugin (pointed at the loopback
OpenAI test server) with a small wiring plugin that registers
`armillary_realtime.upstream_routes.make_router(settings)` the way the realtime plugin
does, so these tests run whatever the rest of the plugin's wiring is; one test
(test_upstream_serve.py) runs the real `armillary serve` with the real plugin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import armillary_openai
import httpx
from armillary_realtime.settings import AgentsSettings
from armillary_realtime.upstream import UpstreamSettings
from armillary_realtime.upstream_routes import make_router
from fastapi import FastAPI
from pydantic import Field

from armillary import SafetyCheck, hookimpl
from armillary.testing import make_app, serve_app
from tests.support.openai_server import OpenAITestServer

API_KEY = "sk-test-upstream"

SCENARIOS = {
    "default_scenario": "retail",
    "scenarios": {"retail": {"name": "Retail", "default_root": "supervisor", "agents": [
        {"name": "supervisor", "instructions": "Greet and route.", "voice": "sage",
         "handoff_description": "Greets", "handoffs": ["returns"]},
        {"name": "returns", "instructions": "Handle returns.",
         "handoff_description": "Returns", "handoffs": ["supervisor"]}]}},
}


class WiringSettings(AgentsSettings):
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)


class UpstreamWiring:
    """The realtime plugin's wiring of the upstream routes (settings + router), plus any
    safety checks and tools a test brings."""

    def __init__(self, checks: Sequence[SafetyCheck] = (), tools: Sequence[Any] = ()) -> None:
        self.checks = list(checks)
        self.tools = list(tools)

    @hookimpl
    def settings_model(self) -> type[WiringSettings]:
        return WiringSettings

    @hookimpl
    def register_routers(self, register: Any, settings: Any) -> None:
        register(make_router(settings))

    @hookimpl
    def register_safety_checks(self, register: Any) -> None:
        for check in self.checks:
            register(check)

    @hookimpl
    def register_tools(self, register: Any) -> None:
        for tool in self.tools:
            register(tool)


def upstream_config(server: OpenAITestServer | str, *, api_key: str | None = API_KEY,
                    upstream: Mapping[str, Any] | None = None) -> dict[str, Any]:
    url = server if isinstance(server, str) else server.url
    openai: dict[str, Any] = {"base_url": url + "/v1", "model": "gpt-4o-mini",
                              "connect_timeout": 2.0, "chunk_timeout": 5.0,
                              "request_timeout": 5.0}
    if api_key is not None:
        openai["api_key"] = api_key
    return {"kernel": {"default_provider": "openai"},
            "plugins": {"openai": openai,
                        "realtime": {**SCENARIOS, "upstream": dict(upstream or {})}}}


@asynccontextmanager
async def upstream_app(server: OpenAITestServer | str, *, api_key: str | None = API_KEY,
                       upstream: Mapping[str, Any] | None = None,
                       checks: Sequence[SafetyCheck] = (), tools: Sequence[Any] = (),
                       ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = make_app({"openai": armillary_openai,
                    "realtime": UpstreamWiring(checks, tools)},
                   config=upstream_config(server, api_key=api_key, upstream=upstream))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield app, client

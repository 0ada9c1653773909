"""The dvadasa plugin served for real: uvicorn on loopback, the ollama plugin talking to
the Ollama test server over sockets, scripted per head by the request's system prompt."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import armillary_dvadasa
import armillary_ollama
import armillary_tasks
import httpx
import pytest
from armillary_dvadasa.heads import DEFAULT_HEADS
from fastapi import FastAPI

from armillary import SafetyCheck, hookimpl
from armillary.testing import make_app, serve_app
from tests.support.ollama_server import OllamaTestServer, RecordedRequest, Reply

HEAD_IDS = [h.id for h in DEFAULT_HEADS]
WITNESS = "witness"


def who(body: dict[str, Any]) -> str:
    """Which head (or the Witness) a chat request is from, by its system prompt."""
    system = next((m.get("content", "") for m in body.get("messages") or []
                   if m.get("role") == "system"), "")
    if system.startswith("You are the Witness"):
        return WITNESS
    for head in DEFAULT_HEADS:
        if system.startswith(f"You are the {head.name} head"):
            return head.id
    return "?"


def asked(requests: list[RecordedRequest]) -> list[str]:
    return [who(json.loads(r.body or b"{}")) for r in requests if r.path == "/api/chat"]


class Checks:
    """A test plugin registering safety checks."""

    def __init__(self, *checks: SafetyCheck) -> None:
        self.checks = checks

    @hookimpl
    def register_safety_checks(self, register: Any) -> None:
        for check in self.checks:
            register(check)


def head_text(head_id: str) -> str:
    return f"The {head_id} view: answer forty two because reasons {head_id}."


@dataclass
class Served:
    app: FastAPI
    url: str
    client: httpx.AsyncClient
    ollama: OllamaTestServer

    @property
    def kernel(self) -> Any:
        return self.app.state.kernel

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    async def session(self, user_id: str | None = None) -> str:
        r = await self.client.post("/v1/sessions", params={"user_id": user_id} if user_id
                                   else None)
        assert r.status_code == 200, r.text
        return str(r.json()["session_id"])


DvadasaServer = Callable[..., AbstractAsyncContextManager[Served]]


@pytest.fixture
def dvadasa_server() -> DvadasaServer:
    """`async with dvadasa_server({"risk": Reply(...), "witness": "…"}, settings={…})`:
    the dvadasa, ollama and tasks plugins served on loopback; each head (and the Witness)
    answers what `script` gives for it, else `head_text(id)` (the Witness: "Synthesis.")."""

    @asynccontextmanager
    async def start(script: Mapping[str, Reply | str | Callable[[], Reply | str]] | None = None,
                    *, settings: Mapping[str, Any] | None = None,
                    checks: tuple[SafetyCheck, ...] = (),
                    plugins: Mapping[str, object] | None = None,
                    sections: Mapping[str, Any] | None = None) -> AsyncIterator[Served]:
        script = dict(script or {})

        def respond(body: dict[str, Any]) -> Reply | str:
            name = who(body)
            reply = script.get(name)
            if callable(reply):
                reply = reply()
            if reply is not None:
                return reply
            return "Synthesis: the heads agree on forty two." if name == WITNESS \
                else head_text(name)

        with OllamaTestServer(respond=respond) as ollama:
            chosen = {"ollama": armillary_ollama, "tasks": armillary_tasks,
                      "dvadasa": armillary_dvadasa, "checks": Checks(*checks)}
            if plugins is not None:
                chosen = dict(plugins)
            sections = {"ollama": {"base_url": ollama.url, "model": "llama3.2"},
                        "dvadasa": dict(settings or {}), **(sections or {})}
            app = make_app(chosen, config={"plugins": {
                k: v for k, v in sections.items() if k in chosen}})
            async with serve_app(app) as url, httpx.AsyncClient(base_url=url,
                                                                 timeout=30) as client:
                yield Served(app, url, client, ollama)

    return start


async def eventually(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)

"""Serve the tasks + sse + tools plugins with a scripted provider on a loopback port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import armillary_sse
import armillary_tasks
import armillary_tools
import httpx
from fastapi import FastAPI

from armillary import tool
from armillary._event_stream import EventStreamParser
from armillary.testing import (
    ProviderPlugin,
    ScriptedProvider,
    ToolsPlugin,
    Turn,
    make_app,
    serve_app,
)


@tool
def explode(reason: str) -> str:
    """Always raises."""
    raise RuntimeError(reason)


@tool
async def nap(seconds: float) -> str:
    """Sleep for a while."""
    await asyncio.sleep(seconds)
    return "rested"


@tool
def infinite() -> dict[str, Any]:
    """Returns non-finite floats (what JSON cannot carry)."""
    return {"up": float("inf"), "down": float("-inf"), "what": float("nan"), "fine": 1.5}


@dataclass
class Served:
    app: FastAPI
    url: str
    client: httpx.AsyncClient
    provider: ScriptedProvider

    @property
    def kernel(self) -> Any:
        return self.app.state.kernel

    async def submit(self, task: str = "do it", **body: Any) -> str:
        r = await self.client.post("/v1/tasks", json={"task": task, **body})
        assert r.status_code == 202, r.text
        task_id: str = r.json()["task_id"]
        return task_id

    async def finished(self, task_id: str) -> dict[str, Any]:
        run = await self.kernel.runner.wait(task_id, timeout=10)
        assert run.status.finished, run.status
        r = await self.client.get(f"/v1/tasks/{task_id}")
        body: dict[str, Any] = r.json()
        return body


@asynccontextmanager
async def tasks_server(turns: list[Turn | str] | None = None, *,
                       config: Mapping[str, Any] | None = None,
                       sse: bool = True) -> AsyncIterator[Served]:
    provider = ScriptedProvider(turns)
    plugins: dict[str, object] = {"tasks": armillary_tasks, "tools": armillary_tools,
                                  "test-tools": ToolsPlugin(explode, nap, infinite),
                                  "scripted": ProviderPlugin(provider)}
    if sse:
        plugins["sse"] = armillary_sse
    app = make_app(plugins, config=config)
    async with serve_app(app, ws="websockets-sansio") as url, \
            httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield Served(app, url, client, provider)


@dataclass
class SSEEvent:
    id: int | None
    event: str
    data: dict[str, Any]


def strict_json(text: str) -> Any:
    """`json.loads` refusing NaN/Infinity, as browsers' JSON.parse does."""
    def refuse(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


async def read_sse(client: httpx.AsyncClient, path: str, *, headers: dict[str, str] | None = None,
                   limit: int | None = None, comments: list[str] | None = None,
                   stop_on_comment: bool = False) -> list[SSEEvent]:
    """Every event of an SSE response until the server closes it (or `limit` events).
    `data` must be JSON a browser accepts (no NaN/Infinity)."""
    events: list[SSEEvent] = []
    async with client.stream("GET", path, headers={"Accept": "text/event-stream",
                                                   **(headers or {})}) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        parser = EventStreamParser()
        async for line in response.aiter_lines():
            message = parser.feed(line)
            if message is None:
                continue
            if message.comment is not None:
                if comments is not None:
                    comments.append(":" + message.comment)
                if stop_on_comment:
                    break
                continue
            events.append(SSEEvent(id=int(message.id) if message.id is not None else None,
                                   event=message.event,
                                   data=strict_json(message.data or "null")))
            if limit is not None and len(events) >= limit:
                break
    return events

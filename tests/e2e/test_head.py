"""HEAD is served on every GET route, on a real uvicorn: same status and headers as the
GET, no body; an event stream's HEAD answers at once instead of streaming."""

from __future__ import annotations

import asyncio
from typing import Any

import armillary_sse
import armillary_tasks
import httpx

from armillary import RunContext, Strategy, hookimpl
from armillary.testing import make_app, serve_app


class Forever(Strategy):
    name = "forever"

    async def execute(self, ctx: RunContext) -> str | None:
        await asyncio.Event().wait()
        return None


class ForeverPlugin:
    @hookimpl
    def register_strategies(self, register: Any) -> None:
        register(Forever())


def app() -> Any:
    return make_app({"tasks": armillary_tasks, "sse": armillary_sse, "forever": ForeverPlugin()},
                    {"agents": {"default": {"strategy": "forever"}}})


async def test_head_answers_like_get_without_a_body() -> None:
    async with serve_app(app()) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        got = await client.get("/health")
        head = await client.head("/health")
        assert head.status_code == got.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(got.content))
        assert head.headers["content-type"] == got.headers["content-type"]
        missing = await client.head("/v1/tasks/run_nope")
        assert missing.status_code == 404 and missing.content == b""
        post_only = await client.head("/v1/tasks/run_nope/control")
        assert post_only.status_code == 405
        assert "POST" in post_only.headers["allow"]


async def test_head_on_a_live_event_stream_answers_at_once() -> None:
    async with serve_app(app()) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        created = await client.post("/v1/tasks", json={"task": "never ends"})
        task_id = created.json()["task_id"]
        head = await asyncio.wait_for(client.head(
            f"/v1/stream/tasks/{task_id}", headers={"Accept": "text/event-stream"}), 5)
        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/event-stream")
        assert head.content == b""
        # the server is still fine afterwards
        assert (await client.get(f"/v1/tasks/{task_id}")).json()["status"] == "running"

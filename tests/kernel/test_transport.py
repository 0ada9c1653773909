"""The kernel's transports, used by a plugin that imports neither `sse` nor `tasks`:
its own SSE route through `kernel.service(EventStreams)` with its own rendering, a bus
topic as SSE, and a WebSocket through `follow_websocket` — over a real uvicorn on
loopback. The `sse` plugin (the `EventStreams` implementation) is loaded by name from its
entry point, as `plugins.toml` would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Request, WebSocket
from starlette.responses import Response
from websockets.asyncio.client import connect

from armillary import (  # the public API only, as an outside plugin would write it
    Event,
    EventStreamParser,
    EventStreams,
    KernelDep,
    Run,
    follow_websocket,
    hookimpl,
    iso,
    to_json,
)
from armillary.testing import ProviderPlugin, ScriptedProvider, Turn, make_app, serve_app


def watch_render(event: Event) -> tuple[str, str] | None:
    """The watcher's own wire format: `watch.<type>` events, no tokens."""
    if event.type == "token":
        return None
    return f"watch.{event.type}", to_json({"n": event.seq, "kind": event.type,
                                           "at": iso(event.ts)})


def ws_render(event: Event) -> dict[str, Any]:
    return {"kind": event.type, "n": event.seq, "text": event.payload.get("delta"),
            "at": iso(event.ts)}


class Watcher:
    """A plugin with routes of its own that stream through the kernel's transports."""

    @hookimpl
    def register_routers(self, register: Any) -> None:
        router = APIRouter()

        @router.get("/watch/{run_id}")
        async def watch(run_id: str, request: Request, kernel: KernelDep,
                        after: int = 0, raw: bool = False) -> Response:
            streams = kernel.service(EventStreams)
            return streams.sse(request, run_id, after_seq=after,
                               render=None if raw else watch_render)

        @router.get("/watch-topic/{topic}")
        async def watch_topic(topic: str, request: Request, kernel: KernelDep) -> Response:
            return kernel.service(EventStreams).sse_topic(request, topic)

        @router.websocket("/watch/{run_id}/ws")
        async def watch_ws(ws: WebSocket, run_id: str, kernel: KernelDep) -> None:
            def echo(frame: str | bytes) -> dict[str, Any] | None:
                return None if frame == "quiet" else {"kind": "echo", "frame": frame}

            await follow_websocket(ws, kernel, run_id, render=ws_render,
                                   heartbeat_seconds=0.1, min_interval_seconds=0.05,
                                   on_message=echo)

        register(router)


@dataclass
class Served:
    app: Any
    url: str
    client: httpx.AsyncClient
    provider: ScriptedProvider

    @property
    def kernel(self) -> Any:
        return self.app.state.kernel

    async def submit(self, goal: str = "go") -> str:
        run = await self.kernel.runner.submit(Run(goal=goal))
        return str(run.id)


@asynccontextmanager
async def served(turns: list[Turn | str], *, sse: bool = True,
                 config: Mapping[str, Any] | None = None) -> AsyncIterator[Served]:
    provider = ScriptedProvider(turns)
    settings = {"kernel": {"enable": ["sse"] if sse else []}, **(config or {})}
    app = make_app({"watcher": Watcher(), "scripted": ProviderPlugin(provider)},
                   config=settings, load_entry_points=True)
    async with serve_app(app, ws="websockets-sansio") as url, \
            httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield Served(app, url, client, provider)


async def read_sse(client: httpx.AsyncClient, path: str, *, limit: int | None = None,
                   comments: list[str] | None = None) -> list[tuple[str | None, str, Any]]:
    """(id, event, data) of every message until the server ends the stream."""
    out: list[tuple[str | None, str, Any]] = []
    async with client.stream("GET", path, headers={"Accept": "text/event-stream"}) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        parser = EventStreamParser()
        async for line in r.aiter_lines():
            message = parser.feed(line)
            if message is None:
                continue
            if message.comment is not None:
                if comments is not None:
                    comments.append(message.comment)
                continue
            out.append((message.id, message.event, json.loads(message.data)))
            if limit is not None and len(out) >= limit:
                break
    return out


def is_iso_utc(text: str) -> bool:
    return text.endswith("Z") and datetime.fromisoformat(text).utcoffset() is not None


async def test_a_plugin_streams_a_run_over_sse_in_its_own_format() -> None:
    async with served([Turn(text="one two three", delay=0.02)]) as s:
        run_id = await s.submit()
        events = await read_sse(s.client, f"/watch/{run_id}")
        stored = await s.kernel.store.events(run_id)
        assert [e for _, e, _ in events] == [f"watch.{e.type}" for e in stored
                                               if e.type != "token"]
        assert [int(i or 0) for i, _, _ in events] == [e.seq for e in stored
                                                       if e.type != "token"]
        assert events[-1][1] == "watch.completed"  # and then the stream ended
        assert all(is_iso_utc(data["at"]) for _, _, data in events)


async def test_the_default_rendering_is_the_event_type_and_its_payload() -> None:
    async with served(["hello there"]) as s:
        run_id = await s.submit()
        await s.kernel.runner.wait(run_id, timeout=10)
        events = await read_sse(s.client, f"/watch/{run_id}?raw=true&after=1")
        stored = [e for e in await s.kernel.store.events(run_id) if e.seq > 1]
        assert [(int(i or 0), e, d) for i, e, d in events] == [
            (e.seq, e.type, e.payload) for e in stored]


async def test_token_deltas_are_merged_for_every_renderer_and_none_is_lost(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("armillary._default_plugins.single_agent.TOKEN_FLUSH_SECONDS", 0)
    text = " ".join(f"w{i}" for i in range(60))
    async with served([Turn(text=text, delay=0.01)]) as s:
        run_id = await s.submit()
        events = await read_sse(s.client, f"/watch/{run_id}?raw=true")
        sent = [d["delta"] for _, e, d in events if e == "token"]
        stored = await s.kernel.store.events(run_id, types=["token"])
        assert "".join(sent) == text and len(sent) < len(stored)


async def test_without_the_sse_plugin_the_route_is_503_service_unavailable() -> None:
    async with served(["hi"], sse=False) as s:
        run_id = await s.submit()
        r = await s.client.get(f"/watch/{run_id}", headers={"Accept": "text/event-stream"})
        assert r.status_code == 503
        assert r.json()["code"] == "service_unavailable"
        assert r.json()["service"] == "EventStreams"


async def test_a_plugin_streams_a_bus_topic_live_with_heartbeats() -> None:
    config = {"plugins": {"sse": {"heartbeat_seconds": 0.05}}}
    async with served(["hi"], config=config) as s:
        comments: list[str] = []
        reader = asyncio.create_task(read_sse(s.client, "/watch-topic/updates", limit=3,
                                              comments=comments))
        for _ in range(500):  # until the stream has subscribed
            if s.kernel.bus.subscriber_count("updates"):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.15)  # idle for a while: heartbeats
        for n in range(3):
            await s.kernel.bus.publish("updates", Event(id=f"e{n}", run_id="-", seq=n + 1,
                                                         type="news", payload={"n": n}))
        events = await asyncio.wait_for(reader, 5)
        assert [(i, e, d) for i, e, d in events] == [(None, "news", {"n": n})
                                                     for n in range(3)]
        assert " heartbeat" in comments
        # the client left: its subscription is gone with it
        for _ in range(100):
            if not s.kernel.bus.subscriber_count("updates"):
                break
            await asyncio.sleep(0.02)
        assert s.kernel.bus.subscriber_count("updates") == 0


async def test_a_plugin_follows_a_run_over_a_websocket_and_it_closes_1000_at_the_end(
        ) -> None:
    async with served([Turn(text="a b c", delay=0.05)]) as s:
        run_id = await s.submit()
        url = s.url.replace("http://", "ws://") + f"/watch/{run_id}/ws"
        async with connect(url) as ws:
            await ws.send("quiet")  # no reply
            await ws.send("ping")
            messages = [json.loads(m) async for m in ws]
            assert ws.close_code == 1000
        assert {"kind": "echo", "frame": "ping"} in messages
        kinds = [m["kind"] for m in messages if m.get("kind") not in (None, "echo")]
        assert kinds[0] == "queued" and kinds[-1] == "completed"
        assert "".join(m["text"] for m in messages if m.get("kind") == "token") == "a b c"
        assert all(is_iso_utc(m["at"]) for m in messages if "at" in m)


async def test_an_idle_websocket_gets_heartbeats_with_an_iso_timestamp() -> None:
    async with served([Turn(text="late", delay=0.5)]) as s:
        run_id = await s.submit()
        url = s.url.replace("http://", "ws://") + f"/watch/{run_id}/ws"
        async with connect(url) as ws:
            messages = [json.loads(m) async for m in ws]
        beats = [m for m in messages if m.get("type") == "heartbeat"]
        assert beats and all(is_iso_utc(b["payload"]["ts"]) for b in beats)
        assert messages[-1].get("kind") == "completed"


async def test_a_websocket_following_a_run_that_never_started_closes_1001_on_shutdown(
        ) -> None:
    config = {"kernel": {"enable": ["sse"], "max_concurrent_runs": 1}}
    async with served([Turn(text="slow", delay=5)], config=config) as s:
        await s.submit("the busy one")
        queued = await s.submit("the waiting one")
        url = s.url.replace("http://", "ws://") + f"/watch/{queued}/ws"
        async with connect(url) as ws:
            first = json.loads(await ws.recv())
            assert first["kind"] == "queued"
            assert s.kernel.request_shutdown()
            rest = [json.loads(m) async for m in ws]
            assert ws.close_code == 1001
        assert all(m.get("kind") != "completed" for m in rest)


def test_iso_is_utc_with_z_as_the_rest_views_write_it() -> None:
    from pydantic import BaseModel

    class Stamp(BaseModel):
        at: datetime

    for ts in (0.0, 1.5, 1_767_225_600.123456):
        written = iso(ts)
        assert written.endswith("Z")
        assert Stamp(at=datetime.fromisoformat(written)).model_dump(mode="json")["at"] == \
            written
    assert iso(0) == "1970-01-01T00:00:00Z"

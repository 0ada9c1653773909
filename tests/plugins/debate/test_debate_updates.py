"""WebSocket /ws/debate-updates: heartbeats while idle, every debate's events live, or one
debate's when the client subscribes to it."""

from __future__ import annotations

import asyncio
import json
import math

import armillary_debate
import armillary_ollama
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from armillary.testing import make_app, serve_app
from tests.plugins.debate.served import (
    Agents,
    config,
    debate_server,
    messages_until,
    slow,
    types,
    until,
)
from tests.support.ollama_server import OllamaTestServer, Reply


def is_end(message: dict[str, object]) -> bool:
    return message["type"] == "debate_complete"


async def test_an_idle_socket_gets_heartbeats_at_the_configured_interval() -> None:
    async with debate_server(settings={"heartbeat_interval": 0.2}) as s, s.ws() as ws:
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = json.loads(await asyncio.wait_for(ws.recv(), 2))
        second = json.loads(await asyncio.wait_for(ws.recv(), 2))
        assert first == second == {"type": "heartbeat"}
        assert 0.3 <= loop.time() - started < 5


async def test_a_subscribed_client_sees_the_rounds_live() -> None:
    agents = Agents(replies={"bob": [slow("bob", 0.3)]})
    async with debate_server(agents) as s, s.ws() as ws:
        debate_id = await s.initialize(max_rounds=2)
        await ws.send(json.dumps({"type": "subscribe", "debate_id": debate_id}))
        assert json.loads(await ws.recv()) == {"type": "subscribed", "debate_id": debate_id}
        await s.control(debate_id, "start")
        seen = await messages_until(ws, lambda m: m["type"] == "argument")
        # the first argument arrives while the debate is still going on
        assert (await s.debate(debate_id))["status"] == "running"
        assert seen[-1]["data"]["agent"] == "alice" and "alice argues" in seen[-1]["data"][
            "text"]
        seen += await messages_until(ws, is_end)
    kinds = types(seen)
    assert kinds[:4] == ["debate_queued", "debate_running", "debate_started", "round_started"]
    assert kinds[4:9] == ["argument"] * 3 + ["consensus_check", "round_started"]
    assert kinds[-4:] == ["consensus_check", "synthesis", "debate_concluded", "debate_complete"]
    assert all(m["debate_id"] == debate_id for m in seen)
    rounds = [m["data"] for m in seen if m["type"] == "round_started"]
    assert rounds == [{"round": 1, "phase": "opening"}, {"round": 2, "phase": "closing"}]
    consensus = [m["data"]["score"] for m in seen if m["type"] == "consensus_check"]
    assert len(consensus) == 2
    seqs = [m["seq"] for m in seen]
    assert seqs == sorted(seqs) and all(m["timestamp"].endswith("Z") for m in seen)


async def test_pause_and_resume_are_sent_to_the_debates_watchers() -> None:
    agents = Agents(replies={"alice": [slow("alice", 0.4)]})
    async with debate_server(agents) as s, s.ws() as ws:
        debate_id = await s.start(max_rounds=1)
        await until(lambda: len(agents.prompts) == 1)
        await s.control(debate_id, "pause")
        await s.control(debate_id, "resume")
        seen = await messages_until(ws, is_end)
    kinds = types(seen)
    assert kinds.index("debate_paused") < kinds.index("debate_resumed") < kinds.index(
        "argument")
    paused = seen[kinds.index("debate_paused")]
    assert paused["data"]["status"] == "paused"


async def test_a_client_watching_one_debate_sees_none_of_the_others() -> None:
    async with debate_server() as s, s.ws() as everything:
        first = await s.initialize(max_rounds=1)
        second = await s.initialize(max_rounds=1, selected_agents=["bob"])
        async with s.ws(f"?debate_id={second}") as one:
            await s.control(first, "start")
            await s.kernel.runner.wait(first, timeout=10)
            await s.control(second, "start")
            only = await messages_until(one, is_end)
            both = await messages_until(everything, lambda m: is_end(m) and
                                        m["debate_id"] == second)
    assert {m["debate_id"] for m in only} == {second}
    assert {m["debate_id"] for m in both} == {first, second}
    assert types(only).count("argument") == 1


async def test_a_task_run_is_not_sent_as_a_debate_event() -> None:
    async with debate_server() as s, s.ws() as ws:
        r = await s.client.post("/v1/tasks", json={"task": "hi", "agent": "alice"})
        await s.kernel.runner.wait(r.json()["task_id"], timeout=10)
        debate_id = await s.start(max_rounds=1, selected_agents=["carol"])
        seen = await messages_until(ws, is_end)
    assert {m["debate_id"] for m in seen} == {debate_id}


async def test_bad_messages_and_unknown_debates_get_coded_errors() -> None:
    async with debate_server() as s:
        async with s.ws() as ws:
            await ws.send("not json")
            error = json.loads(await ws.recv())
            assert error["type"] == "error" and error["code"] == "invalid_message"
            await ws.send(json.dumps({"type": "subscribe", "debate_id": "nope"}))
            error = json.loads(await ws.recv())
            assert error["code"] == "debate_not_found"
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await ws.recv()) == {"type": "pong"}
        async with s.ws("?debate_id=nope") as ws:
            assert json.loads(await ws.recv())["code"] == "debate_not_found"
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 4404


async def test_a_client_that_leaves_releases_its_subscription() -> None:
    async with debate_server() as s:
        bus = s.kernel.bus  # the in-process bus counts subscribers
        before = bus.subscriber_count("*")
        async with s.ws() as ws:
            await ws.send(json.dumps({"type": "ping"}))
            await ws.recv()
            assert bus.subscriber_count("*") == before + 1
        await until(lambda: bus.subscriber_count("*") == before)
        debate_id = await s.start(max_rounds=1)  # events published with nobody listening
        assert (await s.finished(debate_id))["status"] == "completed"


async def test_a_server_shutting_down_closes_the_socket_and_the_argument_in_flight(
        ) -> None:
    agents = Agents(replies={"alice": [Reply(text="endless", stall=math.inf, after=1)]})
    with OllamaTestServer(respond=agents.respond) as ollama:
        app = make_app({"ollama": armillary_ollama, "debate": armillary_debate},
                       config={"plugins": {"ollama": {"base_url": ollama.url,
                                                      "model": "llama3.2"}},
                               "agents": {"alice": {"instructions": "You are alice."}}})
        async with serve_app(app, ws="websockets-sansio") as url:
            async with httpx.AsyncClient(base_url=url) as client:
                r = await client.post("/debate/initialize", json=config(
                    selected_agents=["alice"]))
                debate_id = r.json()["debate_id"]
            ws = await connect(url.replace("http://", "ws://") + "/ws/debate-updates")
            async with httpx.AsyncClient(base_url=url) as client:
                await client.post(f"/debate/{debate_id}/control", json={"action": "start"})
            await until(lambda: len(ollama.replies) == 1)
        # the server is gone: the socket was closed, not left hanging
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        # and the run's argument in flight was ended: the model server saw the hang-up
        await until(lambda: ollama.replies[0].client_closed)

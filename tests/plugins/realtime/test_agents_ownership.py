"""SDK sessions under auth: a session belongs to the key that created it. Another
non-admin key does not see it (transcript and message 404, its push channel closed
4404, no push into it from /api/orchestrate or /api/tools/execute) and cannot take its id
(409); an admin key sees it. A real `armillary serve` with the auth plugin, SQLite."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from armillary.testing import ArmillaryServer
from tests.plugins.realtime.agents_harness import write_config
from tests.support.ollama_server import OllamaTestServer, Reply

ALICE, BOB, OPS = "alice-key-0123456789", "bob-key-0123456789", "ops-key-0123456789"
AUTH = f"""
[plugins.auth]
env_keys = ""
keys = [
  {{ name = "alice", key = "{ALICE}" }},
  {{ name = "bob", key = "{BOB}" }},
  {{ name = "ops", key = "{OPS}", scopes = ["admin"] }},
]
"""


def h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def closed_with(url: str, key: str) -> int | None:
    """The close code of the push channel for `s-own` opened with `key` (None: it said
    `subscribed` and stayed open)."""
    ws = await connect(url.replace("http", "ws") + "/api/orchestration/s-own",
                       subprotocols=["api-key", key])  # type: ignore[list-item]
    try:
        async with asyncio.timeout(5):
            message = json.loads(await ws.recv())
        assert message["type"] == "subscribed"
        return None
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else -1
    finally:
        await ws.close()


@pytest.mark.parametrize("store", ["sqlite:///own.db"])
async def test_a_session_is_its_creators(tmp_path: Path, store: str) -> None:
    with OllamaTestServer(["Hello Alice."]) as ollama, ArmillaryServer(
            write_config(tmp_path, ollama.url, store=store, extra=AUTH,
                         enable=("ollama", "tools", "sse", "auth", "realtime")),
            cwd=tmp_path, log_path=tmp_path / "serve.log") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=15) as client:
            anonymous = await client.post("/api/sdk/session/create", json={
                "session_id": "s-own", "agent_name": "helper", "instructions": ""})
            assert anonymous.status_code == 401, anonymous.text
            created = await client.post("/api/sdk/session/create", headers=h(ALICE), json={
                "session_id": "s-own", "agent_name": "helper", "instructions": "Hi."})
            assert created.status_code == 200, created.text
            said = await client.post("/api/sdk/session/message", headers=h(ALICE), json={
                "session_id": "s-own", "user_input": "hello"})
            assert said.status_code == 200, said.text
            assert said.json()["final_output"] == "Hello Alice."
            mine = await client.get("/api/sdk/session/transcript", headers=h(ALICE),
                                    params={"session_id": "s-own"})
            assert mine.status_code == 200 and mine.json()["length"] == 2

            seen = len(ollama.requests)
            for response in [
                await client.get("/api/sdk/session/transcript", headers=h(BOB),
                                 params={"session_id": "s-own"}),
                await client.post("/api/sdk/session/message", headers=h(BOB), json={
                    "session_id": "s-own", "user_input": "what did alice say?"}),
                await client.post("/api/orchestrate", headers=h(BOB), json={
                    "scenario_id": "retail", "current_agent": "supervisor",
                    "user_message": "refund please", "session_id": "s-own"}),
                await client.post("/api/tools/execute", headers=h(BOB), json={
                    "name": "current_time", "session_id": "s-own"}),
            ]:
                assert response.status_code == 404, response.text
                assert response.json()["code"] == "session_not_found"
            assert len(ollama.requests) == seen, "bob's message reached the model"
            taken = await client.post("/api/sdk/session/create", headers=h(BOB), json={
                "session_id": "s-own", "agent_name": "other", "instructions": ""})
            assert taken.status_code == 409, taken.text
            assert taken.json()["code"] == "session_id_taken"
            fresh = await client.post("/api/sdk/session/create", headers=h(BOB), json={
                "agent_name": "other", "instructions": ""})
            assert fresh.status_code == 200 and fresh.json()["session_id"] != "s-own"

            admin = await client.get("/api/sdk/session/transcript", headers=h(OPS),
                                     params={"session_id": "s-own"})
            assert admin.status_code == 200 and admin.json()["length"] == 2
            again = await client.get("/api/sdk/session/transcript", headers=h(ALICE),
                                     params={"session_id": "s-own"})
            assert again.json()["items"] == mine.json()["items"]  # bob changed nothing

        assert await closed_with(server.url, BOB) == 4404
        assert await closed_with(server.url, ALICE) is None
        assert await closed_with(server.url, OPS) is None
    assert "Traceback" not in server.output()


RATELIMIT = AUTH + """
[plugins.ratelimit]
[plugins.ratelimit.classes]
tools = { limit = "2/minute", methods = ["POST"], paths = ["/api/tools/execute"] }
write = { limit = "1000/minute" }
"""


def test_tool_execution_is_rate_limited_per_key(tmp_path: Path) -> None:
    """The seed's "rate limit tool execution endpoints", per key: the ratelimit plugin's
    class for /api/tools/execute (docs in the plugin README)."""
    with OllamaTestServer() as ollama, ArmillaryServer(
            write_config(tmp_path, ollama.url, extra=RATELIMIT,
                         enable=("ollama", "tools", "auth", "ratelimit", "realtime")),
            cwd=tmp_path, log_path=tmp_path / "serve.log") as server, \
            httpx.Client(base_url=server.url, timeout=10) as client:
        def run(key: str) -> httpx.Response:
            return client.post("/api/tools/execute", headers=h(key),
                               json={"name": "current_time", "arguments": {}})
        alice = [run(ALICE) for _ in range(3)]
        bob = run(BOB)
        other_route = client.post("/api/orchestrate", headers=h(ALICE), json={
            "scenario_id": "retail", "user_message": "refund"})
    assert [r.status_code for r in alice] == [200, 200, 429], alice[-1].text
    assert alice[0].json()["ok"] is True
    assert alice[2].json()["code"] == "rate_limited" and "Retry-After" in alice[2].headers
    assert bob.status_code == 200, bob.text  # another key has its own budget
    assert other_route.status_code == 200, other_route.text


async def subscribe_as(url: str, session_id: str, key: str) -> ClientConnection:
    ws = await connect(url.replace("http", "ws") + f"/api/orchestration/{session_id}",
                       subprotocols=["api-key", key])  # type: ignore[list-item]
    async with asyncio.timeout(5):
        assert json.loads(await ws.recv())["type"] == "subscribed"
    return ws


async def next_push(ws: ClientConnection, timeout: float) -> dict[str, Any] | None:
    """The next non-heartbeat message, or None when none comes within `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                message: dict[str, Any] = json.loads(await ws.recv())
                if message["type"] != "heartbeat":
                    return message
    except TimeoutError:
        return None


async def test_under_auth_each_key_has_its_own_push_channel(tmp_path: Path) -> None:
    """One session id used by two keys is two channels: alice's tool results (a
    browser-only Realtime session id, and an SDK turn's handoff) reach alice's
    subscriber and the admin's view of her SDK session, never bob's."""
    script = [Reply(tool_calls=[{"name": "transfer_to_returns", "arguments": {}}]), "Done."]
    with OllamaTestServer(script) as ollama, ArmillaryServer(
            write_config(tmp_path, ollama.url, extra=AUTH,
                         enable=("ollama", "tools", "auth", "realtime")),
            cwd=tmp_path, log_path=tmp_path / "serve.log") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=15) as client:
            alice_ws = await subscribe_as(server.url, "s-browser", ALICE)
            bob_ws = await subscribe_as(server.url, "s-browser", BOB)
            ran = await client.post("/api/tools/execute", headers=h(ALICE), json={
                "name": "current_time", "session_id": "s-browser", "call_id": "c1"})
            assert ran.status_code == 200, ran.text
            pushed = await next_push(alice_ws, 5)
            assert pushed is not None and pushed["type"] == "tool_result"
            assert pushed["payload"]["call_id"] == "c1"
            assert await next_push(bob_ws, 0.5) is None

            await client.post("/api/sdk/session/create", headers=h(ALICE), json={
                "session_id": "s-sdk", "agent_name": "supervisor", "instructions": "",
                "scenario_id": "retail"})
            mine = await subscribe_as(server.url, "s-sdk", ALICE)
            admin = await subscribe_as(server.url, "s-sdk", OPS)
            said = await client.post("/api/sdk/session/message", headers=h(ALICE), json={
                "session_id": "s-sdk", "user_input": "refund please"})
            assert said.status_code == 200 and said.json()["last_agent"] == "returns"
            for ws in (mine, admin):
                switch = await next_push(ws, 5)
                assert switch is not None and switch["type"] == "agent_switch", switch
                assert switch["payload"]["to_agent"] == "returns"
            for ws in (alice_ws, bob_ws, mine, admin):
                await ws.close()
    assert "Traceback" not in server.output()

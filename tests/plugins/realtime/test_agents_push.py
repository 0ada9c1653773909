"""The orchestration push channel, WS /api/orchestration/{session_id}: agent switches and
tool results through the event bus, for the session subscribed to only."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from armillary.testing import ArmillaryServer
from tests.plugins.realtime.agents_harness import write_config
from tests.support.ollama_server import OllamaTestServer, Reply


async def receive(ws: ClientConnection, type: str, timeout: float = 5) -> dict[str, Any]:
    """The next message of `type` (heartbeats and others skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == type:
                return message  # type: ignore[no-any-return]


async def subscribe(url: str, session_id: str) -> ClientConnection:
    ws = await connect(url.replace("http", "ws") + f"/api/orchestration/{session_id}")
    assert (await receive(ws, "subscribed"))["session_id"] == session_id
    return ws


async def test_the_push_channel_sees_the_agent_switch_and_tool_results_of_its_session(
        tmp_path: Path) -> None:
    with OllamaTestServer() as ollama, ArmillaryServer(
            write_config(tmp_path, ollama.url), log_path=tmp_path / "serve.log") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=15) as client:
            await client.post("/api/sdk/session/create", json={
                "session_id": "s-push", "agent_name": "supervisor", "instructions": "",
                "scenario_id": "retail"})
            mine = await subscribe(server.url, "s-push")
            other = await subscribe(server.url, "s-other")
            ollama.push(
                Reply(tool_calls=[{"name": "transfer_to_returns", "arguments": {}}]),
                Reply(tool_calls=[{"name": "calculator", "arguments": {"expression": "3*3"}}]),
                "Nine.")
            reply = await client.post("/api/sdk/session/message", json={
                "session_id": "s-push", "user_input": "refund 3 items of 3 each"})
            assert reply.status_code == 200, reply.text

            switch = await receive(mine, "agent_switch")
            assert switch["session_id"] == "s-push"
            assert switch["run_id"].startswith("run_")
            assert switch["payload"] == {"session_id": "s-push", "from_agent": "supervisor",
                                         "to_agent": "returns", "reason": "handoff"}
            assert switch["ts"].endswith("Z")
            tool = await receive(mine, "tool_result")
            assert (tool["payload"]["name"], tool["payload"]["ok"]) == ("calculator", True)
            # the tool's result as it returned it, as /api/tools/execute pushes it too
            assert tool["payload"]["result"] == {"expression": "3*3", "result": 9}
            assert tool["payload"]["error"] is None

            # /api/orchestrate recommending another root, and /api/tools/execute, push too
            decision = await client.post("/api/orchestrate", json={
                "scenario_id": "retail", "current_agent": "returns", "session_id": "s-push",
                "user_message": "what is the price of a discount bundle?"})
            assert decision.json()["recommended_root"] == "sales"
            pushed = await receive(mine, "agent_switch")
            assert pushed["payload"]["reason"] == "orchestrate"
            assert (pushed["payload"]["from_agent"], pushed["payload"]["to_agent"]) == (
                "returns", "sales")
            await client.post("/api/tools/execute", json={
                "name": "calculator", "arguments": {"expression": "1+1"},
                "session_id": "s-push", "call_id": "c-9"})
            executed = await receive(mine, "tool_result")
            assert executed["payload"]["call_id"] == "c-9"
            assert executed["payload"]["result"] == {"expression": "1+1", "result": 2}

            # the other session's channel saw none of it
            with pytest.raises(TimeoutError):
                await receive(other, "agent_switch", timeout=0.5)
            await mine.close()
            await other.close()


async def test_the_push_channel_closes_going_away_when_the_server_stops(
        tmp_path: Path) -> None:
    from websockets.exceptions import ConnectionClosed

    server = ArmillaryServer(write_config(tmp_path, "http://127.0.0.1:9"),
                             log_path=tmp_path / "serve.log", stop_timeout=10).start()
    try:
        ws = await subscribe(server.url, "s-bye")
        stopping = asyncio.get_running_loop().run_in_executor(None, server.stop)
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(8):
                while True:
                    await ws.recv()
        code = await stopping
    finally:
        server.stop()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    # a clean exit (uvicorn re-raises SIGTERM once it is done), not the SIGKILL after
    # stop_timeout
    assert code in (0, -signal.SIGTERM)
    assert "Traceback" not in server.output()

"""The WebSocket side of /v1/stream/tasks/{id}: the seed's {"type", "payload"} envelope."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from armillary.models import ToolCall
from armillary.testing import Turn
from tests.plugins.tasks.served import tasks_server


def ws_url(http_url: str, path: str) -> str:
    return http_url.replace("http://", "ws://") + path


async def receive_all(ws: Any) -> list[dict[str, Any]]:
    messages = []
    async for raw in ws:
        messages.append(json.loads(raw))
    return messages


async def test_events_arrive_as_type_payload_envelopes_and_the_socket_closes_at_the_end(
        ) -> None:
    calc = ToolCall(name="calculator", arguments={"expression": "3*3"})
    async with tasks_server([Turn(tool_calls=[calc]), "nine"]) as s:
        task_id = await s.submit()
        async with connect(ws_url(s.url, f"/v1/stream/tasks/{task_id}")) as ws:
            messages = await receive_all(ws)
            assert ws.close_code == 1000
        types = [m["type"] for m in messages]
        assert types[0] == "queued" and types[-1] == "completed"
        assert {"step", "tool_call"} <= set(types)
        assert all(set(m) >= {"type", "payload"} for m in messages)
        tool = next(m for m in messages if m["type"] == "tool_call")["payload"]
        assert tool["tool_name"] == "calculator" and tool["result"]["result"] == 9


async def test_a_websocket_client_can_resume_after_an_event_id() -> None:
    async with tasks_server(["done"]) as s:
        task_id = await s.submit()
        await s.finished(task_id)
        async with connect(ws_url(s.url, f"/v1/stream/tasks/{task_id}?last_event_id=2")) as ws:
            messages = await receive_all(ws)
        assert messages[0]["seq"] == 3 and messages[-1]["type"] == "completed"


async def test_a_websocket_client_steers_the_task_with_control_messages() -> None:
    nap = Turn(tool_calls=[ToolCall(name="nap", arguments={"seconds": 0.1})])
    async with tasks_server([nap, nap, "done"]) as s:
        task_id = await s.submit()
        async with connect(ws_url(s.url, f"/v1/stream/tasks/{task_id}")) as ws:
            await ws.send(json.dumps({"type": "control", "payload": {"action": "stop"}}))
            messages = await receive_all(ws)
        control = [m for m in messages if m["type"] == "control"]
        assert control and control[0]["payload"]["new_status"] == "stopped"
        assert messages[-1]["type"] == "stopped"


async def test_an_unknown_task_gets_an_error_message_and_close_code_4404() -> None:
    async with tasks_server() as s, connect(ws_url(s.url, "/v1/stream/tasks/nope")) as ws:
        first = json.loads(await ws.recv())
        assert first == {"type": "error", "payload": {"detail": "no task 'nope'",
                                                      "code": "task_not_found"}}
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4404

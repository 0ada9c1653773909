"""The WebSocket side of /v1/stream/tasks/{id}: the seed's {"type", "payload"} envelope."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from armillary._models import ToolCall
from armillary.testing import Turn
from tests.plugins.tasks.served import strict_json, tasks_server


def ws_url(http_url: str, path: str) -> str:
    return http_url.replace("http://", "ws://") + path


async def receive_all(ws: Any) -> list[dict[str, Any]]:
    messages = []
    async for raw in ws:
        messages.append(json.loads(raw))
    return messages


async def next_of_type(ws: Any, type: str) -> dict[str, Any]:
    """The next message of `type`, skipping the run's events in between."""
    while True:
        message: dict[str, Any] = json.loads(await ws.recv())
        if message["type"] == type:
            return message


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


async def test_frames_that_are_not_controls_get_an_error_and_the_socket_stays_usable() -> None:
    nap = Turn(tool_calls=[ToolCall(name="nap", arguments={"seconds": 0.2})])
    async with tasks_server([nap] * 20 + ["done"]) as s:
        task_id = await s.submit()
        async with connect(ws_url(s.url, f"/v1/stream/tasks/{task_id}")) as ws:
            await ws.recv()
            for frame in (b"\x00\x01binary", "not json", json.dumps([1, 2]),
                          json.dumps({"type": "control", "payload": {"action": "dance"}})):
                await ws.send(frame)
                reply = await next_of_type(ws, "error")
                assert reply["payload"]["code"] == "invalid_message"
            await ws.send(json.dumps({"type": "control", "payload": {"action": "stop"}}))
            control = await next_of_type(ws, "control")
            assert control["payload"]["new_status"] == "stopped"
            rest = await receive_all(ws)
            assert rest[-1]["type"] == "stopped" and ws.close_code == 1000


async def test_a_bad_last_event_id_is_an_error_message_and_close_4422() -> None:
    async with tasks_server(["done"]) as s:
        task_id = await s.submit()
        for bad in ("abc", "-1", "1.5"):
            async with connect(ws_url(s.url, f"/v1/stream/tasks/{task_id}"
                                             f"?last_event_id={bad}")) as ws:
                first = json.loads(await ws.recv())
                assert first["type"] == "error"
                assert first["payload"]["code"] == "validation_error"
                assert "last_event_id" in first["payload"]["detail"]
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                assert ws.close_code == 4422


async def test_non_finite_numbers_go_out_as_null_never_as_nan_or_infinity() -> None:
    async with tasks_server([Turn(tool_calls=[ToolCall(name="infinite")]), "done"]) as s:
        task_id = await s.submit()
        async with connect(ws_url(s.url, f"/v1/stream/tasks/{task_id}")) as ws:
            raw = [m async for m in ws]
        messages = [strict_json(m) for m in raw]  # JSON.parse would throw on Infinity
        tool = next(m for m in messages if m["type"] == "tool_call")["payload"]
        assert tool["result"] == {"up": None, "down": None, "what": None, "fine": 1.5}


def is_iso_utc(text: str) -> bool:
    from datetime import datetime

    return text.endswith("Z") and datetime.fromisoformat(text).utcoffset() is not None


async def test_timestamps_are_iso_utc_in_envelopes_payloads_and_heartbeats() -> None:
    calc = ToolCall(name="calculator", arguments={"expression": "1+2"})
    nap = Turn(tool_calls=[ToolCall(name="nap", arguments={"seconds": 0.8})])  # idle: beats
    config = {"plugins": {"tasks": {"stream_heartbeat_seconds": 0.05}}}
    async with tasks_server([Turn(tool_calls=[calc]), nap, "three"], config=config) as s:
        task_id = await s.submit()
        async with connect(ws_url(s.url, f"/v1/stream/tasks/{task_id}")) as ws:
            messages = await receive_all(ws)
        events = [m for m in messages if m["type"] != "heartbeat"]
        beats = [m for m in messages if m["type"] == "heartbeat"]
        assert all(is_iso_utc(m["ts"]) for m in events)
        assert beats and all(is_iso_utc(b["payload"]["ts"]) for b in beats)
        stored = {e.seq: e for e in await s.kernel.store.events(task_id)}
        from armillary._events import iso

        assert all(m["ts"] == iso(stored[m["seq"]].ts) for m in events)
        step = next(m for m in events if m["type"] == "step")["payload"]
        rest = (await s.client.get(f"/v1/tasks/{task_id}/steps")).json()["items"]
        assert step["started_at"] == rest[0]["started_at"]

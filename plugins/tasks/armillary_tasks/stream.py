"""WebSocket side of `/v1/stream/tasks/{task_id}`: the seed's `{"type", "payload"}` envelope.

(`GET` with `Accept: text/event-stream` on the same path is the `sse` plugin's route.)

Server → client: one message per event, `{"type", "payload", "seq", "ts"}`, in order, from
`last_event_id` (query) on; the run's end event is last, then the socket closes (1000).
Batches are sent at most every `stream_min_interval_seconds`; token deltas are merged.
Idle streams get `{"type": "heartbeat"}`. Client → server (optional steering):
`{"type": "control", "payload": {"action": "pause" | "resume" | "stop"}}`, answered with
`{"type": "control", "payload": <ControlResponse>}` or `{"type": "error", ...}`; anything
else (not JSON, binary, another shape) gets `{"type": "error"}` with code `invalid_message`
and the socket stays open. A `last_event_id` that is not a whole number from 0 to
2**53 - 1 gets an error message (`validation_error`) and close 4422. When the server shuts
down the stream sends what the log holds and closes with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from armillary.deps import KernelDep
from armillary.errors import ArmillaryError
from armillary.events import END_EVENT_TYPES, coalesce, follow_run, to_json
from armillary.kernel import Kernel
from armillary_tasks.schemas import MAX_OFFSET
from armillary_tasks.settings import TasksSettings

NOT_FOUND_CLOSE = 4404
INVALID_CLOSE = 4422
GOING_AWAY = 1001

INVALID_MESSAGE = {"type": "error", "payload": {
    "detail": 'expected {"type": "control", "payload": {"action": "pause" | "resume" | '
              '"stop"}}', "code": "invalid_message"}}


async def _send(ws: WebSocket, message: dict[str, Any]) -> None:
    await ws.send_text(to_json(message))  # never NaN/Infinity, which JSON.parse rejects


async def _send_events(ws: WebSocket, kernel: Kernel, run_id: str, after: int,
                       settings: TasksSettings, turn: asyncio.Lock) -> bool:
    """Send the run's events until its end event (returns True) or the server stops."""
    last_flush = 0.0
    async for batch in follow_run(kernel.store, kernel.bus, run_id, after_seq=after,
                                  idle_timeout=settings.stream_heartbeat_seconds,
                                  stop=kernel.stopping):
        async with turn:  # a control's answer goes out before the events it caused
            if not batch:
                await _send(ws, {"type": "heartbeat", "payload": {"ts": time.time()}})
                continue
            for event in coalesce(batch):
                await _send(ws, {"type": event.type, "payload": event.payload,
                                 "seq": event.seq, "ts": event.ts})
            if batch[-1].type in END_EVENT_TYPES:
                return True
        wait = settings.stream_min_interval_seconds - (time.monotonic() - last_flush)
        last_flush = time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
    return False


def _action(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        message: Any = json.loads(text)
    except ValueError:
        return None
    payload = message.get("payload") if isinstance(message, dict) else None
    action = payload.get("action") if isinstance(payload, dict) else None
    if not isinstance(message, dict) or message.get("type") != "control" or \
            action not in ("pause", "resume", "stop"):
        return None
    return str(action)


async def _receive_controls(ws: WebSocket, kernel: Kernel, run_id: str,
                            turn: asyncio.Lock) -> None:
    from armillary_tasks.routes import _controlled

    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        action = _action(message.get("text"))  # binary frames are never a control
        async with turn:
            if action is None:
                await _send(ws, INVALID_MESSAGE)
                continue
            try:
                run = await _controlled(kernel, run_id, action)
            except ArmillaryError as exc:
                await _send(ws, {"type": "error", "payload": exc.to_dict()})
                continue
            await _send(ws, {"type": "control", "payload": {
                "task_id": run_id, "new_status": run.status.value, "detail": action}})


def _parse_after(raw: str | None) -> int | None:
    """`last_event_id` as a whole number from 0 to `MAX_OFFSET`; None when it is not one
    (a larger value would overflow the store's integers)."""
    if raw is None or raw == "":
        return 0
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > len(str(MAX_OFFSET)):
        return None
    value = int(raw)
    return value if value <= MAX_OFFSET else None


def make_router(settings: TasksSettings) -> APIRouter:
    router = APIRouter(tags=["streaming"])

    @router.websocket("/v1/stream/tasks/{task_id}")
    async def stream_task(ws: WebSocket, task_id: str, kernel: KernelDep,
                          last_event_id: str | None = None) -> None:
        await ws.accept()
        after = _parse_after(last_event_id)
        if after is None:
            await _send(ws, {"type": "error", "payload": {
                "detail": f"last_event_id: expected a whole number from 0 to {MAX_OFFSET}, "
                          f"got {last_event_id[:40]!r}", "code": "validation_error"}})
            await ws.close(code=INVALID_CLOSE, reason="validation_error")
            return
        if await kernel.store.get_run(task_id) is None:
            await _send(ws, {"type": "error", "payload": {
                "detail": f"no task {task_id!r}", "code": "task_not_found"}})
            await ws.close(code=NOT_FOUND_CLOSE, reason="task_not_found")
            return
        turn = asyncio.Lock()
        sender = asyncio.create_task(_send_events(ws, kernel, task_id, after, settings, turn))
        receiver = asyncio.create_task(_receive_controls(ws, kernel, task_id, turn))
        done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        for task in (sender, receiver):
            task.cancel()
        for task in (sender, receiver):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError,
                                     OSError):
                await task
        if sender in done and not sender.cancelled() and sender.exception() is None:
            code = 1000 if sender.result() else GOING_AWAY
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await ws.close(code=code)

    return router

"""WebSocket side of `/v1/stream/tasks/{task_id}`: the seed's `{"type", "payload"}` envelope.

(`GET` with `Accept: text/event-stream` on the same path is the `sse` plugin's route.)

Server → client: one message per event, `{"type", "payload", "seq", "ts"}`, in order, from
`last_event_id` (query) on; the run's end event is last, then the socket closes (1000).
Batches are sent at most every `stream_min_interval_seconds`; token deltas are merged.
Idle streams get `{"type": "heartbeat"}`. Client → server (optional steering):
`{"type": "control", "payload": {"action": "pause" | "resume" | "stop"}}`, answered with
`{"type": "control", "payload": <ControlResponse>}` or `{"type": "error", ...}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from armillary.deps import KernelDep
from armillary.errors import ArmillaryError
from armillary.events import coalesce, follow_run
from armillary.kernel import Kernel
from armillary_tasks.settings import TasksSettings

NOT_FOUND_CLOSE = 4404


async def _send_events(ws: WebSocket, kernel: Kernel, run_id: str, after: int,
                       settings: TasksSettings) -> None:
    last_flush = 0.0
    async for batch in follow_run(kernel.store, kernel.bus, run_id, after_seq=after,
                                  idle_timeout=settings.stream_heartbeat_seconds):
        if not batch:
            await ws.send_json({"type": "heartbeat", "payload": {"ts": time.time()}})
            continue
        for event in coalesce(batch):
            await ws.send_json({"type": event.type, "payload": event.payload,
                                "seq": event.seq, "ts": event.ts})
        wait = settings.stream_min_interval_seconds - (time.monotonic() - last_flush)
        last_flush = time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)


async def _receive_controls(ws: WebSocket, kernel: Kernel, run_id: str) -> None:
    from armillary_tasks.routes import _controlled

    while True:
        message: Any = await ws.receive_json()
        payload = message.get("payload") if isinstance(message, dict) else None
        action = payload.get("action") if isinstance(payload, dict) else None
        if not isinstance(message, dict) or message.get("type") != "control" or \
                action not in ("pause", "resume", "stop"):
            await ws.send_json({"type": "error", "payload": {
                "detail": 'expected {"type": "control", "payload": {"action": '
                          '"pause" | "resume" | "stop"}}', "code": "invalid_message"}})
            continue
        try:
            run = await _controlled(kernel, run_id, action)
        except ArmillaryError as exc:
            await ws.send_json({"type": "error", "payload": exc.to_dict()})
            continue
        await ws.send_json({"type": "control", "payload": {
            "task_id": run_id, "new_status": run.status.value, "detail": action}})


def make_router(settings: TasksSettings) -> APIRouter:
    router = APIRouter(tags=["streaming"])

    @router.websocket("/v1/stream/tasks/{task_id}")
    async def stream_task(ws: WebSocket, task_id: str, kernel: KernelDep,
                          last_event_id: int = 0) -> None:
        await ws.accept()
        if await kernel.store.get_run(task_id) is None:
            await ws.send_json({"type": "error", "payload": {
                "detail": f"no task {task_id!r}", "code": "task_not_found"}})
            await ws.close(code=NOT_FOUND_CLOSE, reason="task_not_found")
            return
        sender = asyncio.create_task(_send_events(ws, kernel, task_id, last_event_id, settings))
        receiver = asyncio.create_task(_receive_controls(ws, kernel, task_id))
        done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        for task in (sender, receiver):
            task.cancel()
        for task in (sender, receiver):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError,
                                     OSError):
                await task
        if sender in done and sender.exception() is None:
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await ws.close(code=1000)

    return router

"""`/v1/stream/tasks/{task_id}`: a task's events live, over SSE (`GET`) or a WebSocket.

Both are renderings of the run's log in the seed's shapes, through the kernel's
transports (`armillary.EventStreams`, which the `sse` plugin provides, and
`armillary.follow_websocket`); timestamps go out as ISO 8601 UTC (`armillary.iso`),
as in the REST views.

SSE: `id:` = the event's `seq` (what `Last-Event-ID`, header or `?last_event_id=`,
resumes after), `event:` = its type (`step`, `plan_update`, `tool_call`,
`memory_summary`, `log`, `token`, `message`, the lifecycle events named after the status
entered), `data:` = its payload. A resume position that is not a whole number from 0 to
2**53 - 1 is a 422 `validation_error` before the stream starts; an `Accept` without
`text/event-stream` is 406 `not_acceptable`; without the `sse` plugin, 503
`service_unavailable`.

WebSocket: one message per event, `{"type", "payload", "seq", "ts"}`, in order, from
`last_event_id` (query) on; the run's end event is last, then the socket closes (1000).
Batches are sent at most every `stream_min_interval_seconds`; token deltas are merged.
Idle streams get `{"type": "heartbeat", "payload": {"ts"}}`. Client → server (optional
steering): `{"type": "control", "payload": {"action": "pause" | "resume" | "stop"}}`,
answered with `{"type": "control", "payload": <ControlResponse>}` or `{"type": "error",
...}`; anything else (not JSON, binary, another shape) gets `{"type": "error"}` with code
`invalid_message` and the socket stays open. A bad `last_event_id` gets an error message
(`validation_error`) and close 4422; an unknown task, `task_not_found` and 4404. When the
server shuts down the stream sends what the log holds and closes with 1001.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, WebSocket
from starlette.responses import Response

from armillary import (
    EVENT_STREAM,
    ArmillaryError,
    Event,
    EventStreams,
    KernelDep,
    accepts,
    follow_websocket,
    iso,
    to_json,
    visible,
)
from armillary_tasks import views
from armillary_tasks.control import Action, control
from armillary_tasks.schemas import MAX_OFFSET
from armillary_tasks.settings import TasksSettings

NOT_FOUND_CLOSE = 4404
INVALID_CLOSE = 4422

INVALID_MESSAGE = {"type": "error", "payload": {
    "detail": 'expected {"type": "control", "payload": {"action": "pause" | "resume" | '
              '"stop"}}', "code": "invalid_message"}}

#: payload fields holding a time: epoch seconds in the store, ISO 8601 on the wire
TIMESTAMP_FIELDS: dict[str, tuple[str, ...]] = {"step": ("started_at",),
                                                "tool_call": ("timestamp",)}


class NotAcceptable(ArmillaryError):
    code = "not_acceptable"
    status_code = 406


class SSEResponse(Response):
    """What the route answers with, as the OpenAPI document sees it (the body comes
    from the `sse` plugin's `EventStreams`)."""

    media_type = EVENT_STREAM


def wire_payload(event: Event) -> dict[str, Any]:
    """An event's payload as it goes out: its timestamps as ISO 8601 UTC."""
    fields = TIMESTAMP_FIELDS.get(event.type)
    if not fields:
        return event.payload
    payload = dict(event.payload)
    for name in fields:
        value = payload.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and \
                math.isfinite(value):
            payload[name] = iso(value)
    return payload


def render_sse(event: Event) -> tuple[str, str]:
    """`event:` the event's type (the seed's names), `data:` its payload."""
    return event.type, to_json(wire_payload(event))


def render_ws(event: Event) -> dict[str, Any]:
    """The seed's `{"type", "payload"}` envelope, plus `seq` and `ts`."""
    return {"type": event.type, "payload": wire_payload(event), "seq": event.seq,
            "ts": iso(event.ts)}


#: what a WebSocket client may ask for (cancel is DELETE's)
STEERING: dict[str, Action] = {"pause": "pause", "resume": "resume", "stop": "stop"}


def _action(text: str | bytes) -> Action | None:
    if not isinstance(text, str):  # a binary frame is never a control
        return None
    try:
        message: Any = json.loads(text)
    except ValueError:
        return None
    payload = message.get("payload") if isinstance(message, dict) else None
    action = payload.get("action") if isinstance(payload, dict) else None
    if not isinstance(message, dict) or message.get("type") != "control" or \
            not isinstance(action, str):
        return None
    return STEERING.get(action)


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

    @router.get("/v1/stream/tasks/{task_id}", response_class=SSEResponse, status_code=200,
                responses={
        200: {"content": {EVENT_STREAM: {"schema": {"type": "string"}}},
              "description": "The task's events as Server-Sent Events: `id:` (the event's "
                             "`seq`), `event:` (its type), `data:` (its JSON payload); "
                             "heartbeat comments while idle; the stream ends after the "
                             "task's end event"},
        404: {"description": "No such task (`task_not_found`)"},
        406: {"description": "`Accept` does not allow `text/event-stream` "
                             "(`not_acceptable`)"},
        422: {"description": "`Last-Event-ID` or `last_event_id` is not a whole number "
                             f"from 0 to {MAX_OFFSET} (`validation_error`); refused "
                             "before the stream starts"},
        503: {"description": "No SSE transport: the `sse` plugin is not enabled "
                             "(`service_unavailable`)"}})
    async def stream_task(task_id: str, request: Request, kernel: KernelDep,
                          last_event_id_header: Annotated[int | None, Header(
                              alias="last-event-id", ge=0, le=MAX_OFFSET,
                              description="Resume after this event (what EventSource "
                                          "sends on reconnect); wins over the query")] = None,
                          last_event_id: Annotated[int | None, Query(
                              ge=0, le=MAX_OFFSET, description="Resume after this event")] = None
                          ) -> Response:
        """Live events of a task as Server-Sent Events (replay, then follow, then end)."""
        if not accepts(request.headers.get("accept"), EVENT_STREAM):
            raise NotAcceptable("this path serves text/event-stream (or a WebSocket upgrade)")
        streams = kernel.service(EventStreams)
        after = last_event_id_header if last_event_id_header is not None else \
            last_event_id or 0
        await views.get_run(kernel, task_id)  # 404 task_not_found
        return streams.sse(request, task_id, after_seq=after, render=render_sse)

    @router.websocket("/v1/stream/tasks/{task_id}")
    async def stream_task_ws(ws: WebSocket, task_id: str, kernel: KernelDep,
                             last_event_id: str | None = None) -> None:
        await ws.accept()
        after = _parse_after(last_event_id)
        if after is None:
            await ws.send_text(to_json({"type": "error", "payload": {
                "detail": f"last_event_id: expected a whole number from 0 to {MAX_OFFSET}, "
                          f"got {(last_event_id or '')[:40]!r}", "code": "validation_error"}}))
            await ws.close(code=INVALID_CLOSE, reason="validation_error")
            return
        run = await kernel.store.get_run(task_id)
        if run is None or not visible(run.owner):
            await ws.send_text(to_json({"type": "error", "payload": {
                "detail": f"no task {task_id!r}", "code": "task_not_found"}}))
            await ws.close(code=NOT_FOUND_CLOSE, reason="task_not_found")
            return

        async def steer(frame: str | bytes) -> dict[str, Any]:
            action = _action(frame)
            if action is None:
                return INVALID_MESSAGE
            try:
                run = await control(kernel, task_id, action)
            except ArmillaryError as exc:
                return {"type": "error", "payload": exc.to_dict()}
            return {"type": "control", "payload": {
                "task_id": task_id, "new_status": run.status.value, "detail": action}}

        await follow_websocket(ws, kernel, task_id, after_seq=after, render=render_ws,
                               heartbeat_seconds=settings.stream_heartbeat_seconds,
                               min_interval_seconds=settings.stream_min_interval_seconds,
                               on_message=steer)

    return router

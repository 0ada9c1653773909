"""Transports any plugin streams events with: Server-Sent Events through the
`EventStreams` service, WebSocket following with `follow_websocket`.

The route's plugin owns its path and its wire format (a render function); the transport
does the rest, the same way for everyone: replay of a run's log after a sequence number,
following the bus, heartbeats while idle, token deltas coalesced, at most one write per
`min_interval` (back-pressure: what arrives meanwhile goes out in the next write), the end
after the run's end event, and a clean end when the server shuts down.

    from armillary import EventStreams

    @router.get("/my/runs/{run_id}/events")
    async def events(run_id: str, request: Request, kernel: KernelDep) -> Response:
        return kernel.service(EventStreams).sse(request, run_id, after_seq=0,
                                                render=lambda e: (e.type, to_json(e.payload)))

`EventStreams` is implemented by the `sse` plugin (`register_services`); without it,
`kernel.service(EventStreams)` raises a 503 `service_unavailable`. Timestamps a render
puts on the wire are ISO 8601 UTC (`armillary._events.iso`).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from armillary._events import END_EVENT_TYPES, coalesce, follow_run, iso, to_json
from armillary._models import Event

if TYPE_CHECKING:  # starlette is imported when a stream starts: `import armillary` stays light
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.websockets import WebSocket

    from armillary._kernel import Kernel

log = logging.getLogger("armillary.transport")

#: an SSE rendering: (`event:` name, `data:` text, usually JSON), or None to skip the event
SSERender = Callable[[Event], tuple[str, str] | None]
#: a WebSocket rendering: the message (anything `to_json` writes), or None to skip it
WebSocketRender = Callable[[Event], Any]
#: a client frame (text, or bytes for a binary frame) → the reply to send, or None (or an
#: awaitable of that: the handler may be sync or async)
OnMessage = Callable[[str | bytes], Any]

#: WebSocket close codes: after the run's end event; when the server shuts down
NORMAL_CLOSE = 1000
GOING_AWAY = 1001
INTERNAL_ERROR = 1011


def render_event(event: Event) -> tuple[str, str]:
    """The default SSE rendering: `event:` the event's type, `data:` its payload as JSON
    (NaN and ±Infinity as null, which every JSON parser accepts)."""
    return event.type, to_json(event.payload)


class EventStreams(abc.ABC):
    """Server-Sent Events for any plugin's route (a service: `kernel.service(EventStreams)`).

    Both methods return the response to answer with; the route does its own checks
    (the run exists, `Accept` allows `text/event-stream`, the resume position is valid)
    before calling them. A client disconnecting ends the stream, never the run."""

    @abc.abstractmethod
    def sse(self, request: Request, run_id: str, *, after_seq: int = 0,
            render: SSERender | None = None) -> Response:
        """A run's log as SSE: the events with `seq > after_seq` from the store, then live
        ones from the bus, then the run's end event, then the stream closes. `id:` is the
        event's `seq` (what `Last-Event-ID` resumes after); `render` (default
        `render_event`) names and writes each event, or skips it. Idle streams get
        heartbeat comments; token deltas are merged; at most one write per the
        implementation's minimum interval. When the server shuts down the stream sends
        what the log holds and ends."""

    @abc.abstractmethod
    def sse_topic(self, request: Request, topic: str, *,
                  render: SSERender | None = None) -> Response:
        """A bus topic as SSE (a firehose, a plugin's updates): live events only (a topic
        has no log to replay, so no `id:`), heartbeats, merged token deltas, paced writes,
        until the server shuts down or the client leaves. A client that falls behind
        loses the oldest events (the bus's bounded queue)."""


def heartbeat_message() -> dict[str, Any]:
    """The default idle message of `follow_websocket`."""
    return {"type": "heartbeat", "payload": {"ts": iso(time.time())}}


async def _send(ws: WebSocket, message: Any) -> None:
    await ws.send_text(to_json(message))  # never NaN/Infinity, which JSON.parse rejects


async def _send_run(ws: WebSocket, kernel: Kernel, run_id: str, after_seq: int,
                    render: WebSocketRender, heartbeat: Callable[[], Any] | None,
                    heartbeat_seconds: float, min_interval: float, turn: asyncio.Lock) -> bool:
    """Send the run's events until its end event (True) or the server stops (False)."""
    async for batch in follow_run(kernel.store, kernel.bus, run_id, after_seq=after_seq,
                                  idle_timeout=heartbeat_seconds, stop=kernel.stopping):
        async with turn:  # a reply to the client goes out before the events it caused
            if not batch:
                if heartbeat is not None:
                    await _send(ws, heartbeat())
                continue
            for event in coalesce(batch):
                message = render(event)
                if message is not None:
                    await _send(ws, message)
            if batch[-1].type in END_EVENT_TYPES:
                return True
        if min_interval > 0:  # a whole interval to the next batch: events pile up meanwhile
            await asyncio.sleep(min_interval)
    return False


async def _receive(ws: WebSocket, on_message: OnMessage | None, turn: asyncio.Lock) -> None:
    """Answer client frames until the client goes away (then return)."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        if on_message is None:
            continue  # nothing to say to the client; reading is how its leaving is seen
        text = message.get("text")
        data: str | bytes = text if text is not None else message.get("bytes") or b""
        async with turn:
            reply = on_message(data)
            if inspect.isawaitable(reply):
                reply = await reply
            if reply is not None:
                await _send(ws, reply)


async def follow_websocket(ws: WebSocket, kernel: Kernel, run_id: str, *, after_seq: int = 0,
                           render: WebSocketRender, heartbeat_seconds: float = 15.0,
                           min_interval_seconds: float = 0.2,
                           on_message: OnMessage | None = None,
                           heartbeat: Callable[[], Any] | None = heartbeat_message) -> bool:
    """Follow a run over a WebSocket: its log after `after_seq`, then live events, each
    sent as `to_json(render(event))` (None skips it), token deltas merged, at most one
    batch per `min_interval_seconds`, `heartbeat()` after `heartbeat_seconds` idle.

    After the end event the socket closes with 1000; when the server shuts down, after
    what the log holds, with 1001. A client frame (text, or bytes when binary) goes to
    `on_message`, sync or async, whose non-None return is sent back — before any event
    it caused (a `stop`'s answer before the `stopped` event). A client leaving ends the
    follow, never the run. Accepts the socket if the route has not; the route checks that
    the run exists and that `after_seq` is valid first. Returns whether the end event was
    sent."""
    from starlette.websockets import WebSocketDisconnect, WebSocketState

    if ws.client_state is WebSocketState.CONNECTING:
        await ws.accept()
    turn = asyncio.Lock()
    sender = asyncio.create_task(_send_run(ws, kernel, run_id, after_seq, render, heartbeat,
                                           heartbeat_seconds, min_interval_seconds, turn))
    receiver = asyncio.create_task(_receive(ws, on_message, turn))
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, receiver):
            task.cancel()
        outcomes = await asyncio.gather(sender, receiver, return_exceptions=True)
    code: int | None = None
    for outcome in outcomes:
        # a client gone mid-send is no failure; anything else is a bug worth a close code
        if isinstance(outcome, Exception) and not isinstance(
                outcome, WebSocketDisconnect | RuntimeError | OSError):
            log.error("following run %s over a WebSocket failed", run_id, exc_info=outcome)
            code = INTERNAL_ERROR
    ended = outcomes[0] is True
    if code is None and isinstance(outcomes[0], bool):
        code = NORMAL_CLOSE if ended else GOING_AWAY
    if code is not None:
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await ws.close(code=code)
    return ended

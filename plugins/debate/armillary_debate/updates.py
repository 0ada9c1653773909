"""WebSocket `/ws/debate-updates`: every debate's events as they happen.

Each message is `{"type", "debate_id", "seq", "timestamp", "data"}` (`data` is the
event's payload), with `type` one of `debate_queued`, `debate_running`, `debate_started`,
`round_started`, `argument`, `moderator_decision`, `consensus_check`, `debate_paused`,
`debate_resumed`, `synthesis`, `debate_concluded` (the outcome), then the end:
`debate_complete`, `debate_stopped`, `debate_failed`, `debate_cancelled` or
`debate_interrupted`. `{"type": "heartbeat"}` goes out after `heartbeat_interval`
seconds (30) without a message.

A client sees every debate its key may see (its own; every one for an admin key or
without auth), or one: `?debate_id=…` on connect, or the message
`{"type": "subscribe", "debate_id": "…"}` (answered `{"type": "subscribed", …}`);
`{"type": "unsubscribe"}` goes back to all. The socket follows the bus's firehose with
a bounded queue: a client that reads too slowly loses the oldest events (replay the
debate from `GET /debates/{id}` or its run's stream), and never slows a debate or the
other clients. Live only: what happened before the client connected is not replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import WebSocket

from armillary import (
    FIREHOSE,
    LIFECYCLE_EVENT_TYPES,
    Event,
    Kernel,
    iso,
    to_json,
    visible,
)
from armillary_debate import debates
from armillary_debate.settings import DebateSettings

log = logging.getLogger(__name__)

HEARTBEAT = {"type": "heartbeat"}
NOT_FOUND_CLOSE = 4404
GOING_AWAY = 1001

_NAMES = {"debate.started": "debate_started", "debate.round_started": "round_started",
          "debate.argument": "argument", "debate.moderator": "moderator_decision",
          "debate.consensus": "consensus_check", "debate.synthesis": "synthesis",
          "debate.concluded": "debate_concluded", "paused": "debate_paused",
          "completed": "debate_complete"}


def render(event: Event) -> dict[str, Any]:
    name = _NAMES.get(event.type)
    if name is None:
        resumed = event.type == "running" and event.payload.get("resumed")
        name = "debate_resumed" if resumed else f"debate_{event.type}"
    return {"type": name, "debate_id": event.run_id, "seq": event.seq,
            "timestamp": iso(event.ts), "data": event.payload}


def _not_found(debate_id: str) -> dict[str, Any]:
    return {"type": "error", "code": "debate_not_found", "detail": f"no debate {debate_id!r}"}


class _Client:
    def __init__(self, ws: WebSocket, kernel: Kernel, settings: DebateSettings,
                 debate_id: str | None) -> None:
        self.ws = ws
        self.kernel = kernel
        self.settings = settings
        self.debate_id = debate_id
        self.lock = asyncio.Lock()
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.last_sent = loop.time()

    async def send(self, message: dict[str, Any]) -> None:
        async with self.lock:
            await self.ws.send_text(to_json(message))
            self.last_sent = self.loop.time()

    async def wanted(self, event: Event) -> bool:
        """One of the debates this client follows, owned by its key (or any, for an
        admin key or without auth)."""
        if self.debate_id is not None and event.run_id != self.debate_id:
            return False
        if not event.type.startswith("debate.") and event.type not in LIFECYCLE_EVENT_TYPES:
            return False
        is_debate, owner = await debates.state(self.kernel).lookup(self.kernel, event.run_id)
        if not event.type.startswith("debate.") and not is_debate:
            return False
        return visible(owner)

    async def on_message(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "subscribe" and isinstance(message, dict) \
                and isinstance(message.get("debate_id"), str):
            debate_id = message["debate_id"]
            if not await debates.exists(self.kernel, debate_id):
                await self.send(_not_found(debate_id))
                return
            self.debate_id = debate_id
            await self.send({"type": "subscribed", "debate_id": debate_id})
        elif kind == "unsubscribe":
            self.debate_id = None
            await self.send({"type": "subscribed", "debate_id": None})
        elif kind == "ping":
            await self.send({"type": "pong"})
        else:
            await self.send({"type": "error", "code": "invalid_message", "detail":
                             'expected {"type": "subscribe", "debate_id": "…"}, '
                             '{"type": "unsubscribe"} or {"type": "ping"}'})

    async def receive(self) -> None:
        while True:
            frame = await self.ws.receive()
            if frame["type"] == "websocket.disconnect":
                return
            text = frame.get("text")
            if text is None and frame.get("bytes") is not None:
                text = frame["bytes"].decode("utf-8", "replace")
            if text is not None:
                await self.on_message(text)


async def serve(ws: WebSocket, kernel: Kernel, settings: DebateSettings,
                debate_id: str | None) -> None:
    """Follow the firehose for `ws` until the client leaves or the server stops."""
    await ws.accept()
    if debate_id is not None and not await debates.exists(kernel, debate_id):
        await ws.send_text(to_json(_not_found(debate_id)))
        await ws.close(code=NOT_FOUND_CLOSE, reason="debate_not_found")
        return
    client = _Client(ws, kernel, settings, debate_id)
    sub = kernel.bus.subscribe(FIREHOSE, max_queue=settings.max_queue)

    async def close_when(waited: Any) -> None:
        with contextlib.suppress(Exception):
            await waited
        await sub.close()

    receiver = asyncio.create_task(client.receive())
    watchers = [asyncio.create_task(close_when(receiver)),
                asyncio.create_task(close_when(kernel.stopping.wait()))]
    interval = settings.heartbeat_interval
    try:
        while True:
            wait = client.last_sent + interval - client.loop.time()
            if wait <= 0:
                await client.send(HEARTBEAT)
                continue
            first = await sub.get(wait)
            if first is None:
                if sub.closed:
                    break
                continue
            sub.lagged = False  # what was dropped is gone: the socket is live only
            for event in [first, *sub.drain()]:
                if await client.wanted(event):
                    await client.send(render(event))
    except Exception:  # the client went away mid-send (the close is not ours to report)
        log.debug("a /ws/debate-updates client went away", exc_info=True)
    finally:
        for task in (receiver, *watchers):
            task.cancel()
        await asyncio.gather(receiver, *watchers, return_exceptions=True)
        await sub.close()
        if kernel.stopping.is_set():
            with contextlib.suppress(Exception):
                await ws.close(code=GOING_AWAY)

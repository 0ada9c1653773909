"""WebSocket /ws/agent-updates: the system status, live.

One `UpdateHub` per kernel builds each update once and offers the same text to every
client; it never awaits a client. Each client has a bounded queue (`client_queue_size`,
oldest dropped first: every update is a whole snapshot, so the newest is what matters)
and its own sender, so a client that stops reading only falls behind itself.

A client gets `{"event_type": "system_status", "data": …}` at once, then
`{"event_type": "status_update", "data": …}` after every change (a run queued, started,
paused or ended, a chat turn: the firehose events the activity counts), at most one per
`min_update_interval_seconds` (changes meanwhile go in the next one), and at least every
`update_interval_seconds` when nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from armillary import to_json

log = logging.getLogger("armillary.agents")

GOING_AWAY = 1001


class UpdateClient:
    def __init__(self, size: int) -> None:
        self.queue: deque[str] = deque(maxlen=size)
        self.ready = asyncio.Event()
        #: updates dropped because this client read too slowly
        self.dropped = 0
        self.sent = 0

    def offer(self, text: str) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(text)
        self.ready.set()

    async def next(self) -> str:
        while not self.queue:
            self.ready.clear()
            await self.ready.wait()
        return self.queue.popleft()


class UpdateHub:
    def __init__(self, build: Callable[[], dict[str, Any]], *, interval: float,
                 min_interval: float, queue_size: int) -> None:
        self.build = build
        self.interval = interval
        self.min_interval = min_interval
        self.queue_size = queue_size
        self.clients: set[UpdateClient] = set()
        self.broadcasts = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def changed(self) -> None:
        """Something the status shows changed: an update goes out soon."""
        self._changed.set()

    def join(self) -> UpdateClient:
        client = UpdateClient(self.queue_size)
        self.clients.add(client)
        return client

    def leave(self, client: UpdateClient) -> None:
        self.clients.discard(client)

    def message(self, event_type: str) -> str:
        return to_json({"event_type": event_type, "data": self.build()})

    def start(self) -> None:
        self._task = asyncio.create_task(self._broadcast(), name="agents-updates")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _broadcast(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            remaining = self.interval - (loop.time() - last)
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)
            gap = self.min_interval - (loop.time() - last)
            if gap > 0:  # coalesce: changes meanwhile go out in this one update
                await asyncio.sleep(gap)
            last = loop.time()
            if self.clients:
                try:
                    text = self.message("status_update")
                except Exception:
                    log.exception("building the status update failed")
                else:
                    self.broadcasts += 1
                    for client in tuple(self.clients):
                        client.offer(text)
            self._changed.clear()  # after building: what it drained is in this update


async def serve_client(ws: Any, hub: UpdateHub, stopping: asyncio.Event) -> None:
    """One accepted client: the system status now, then the hub's updates, until the
    client leaves or the server stops (then close 1001)."""
    from starlette.websockets import WebSocketDisconnect

    client = hub.join()
    client.offer(hub.message("system_status"))

    async def send() -> None:
        while True:
            text = await client.next()
            await ws.send_text(text)
            client.sent += 1

    async def receive() -> None:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass  # the seed reads client frames and ignores them; so do we

    tasks = [asyncio.create_task(send()), asyncio.create_task(receive()),
             asyncio.create_task(stopping.wait())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.leave(client)
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for outcome in outcomes[:2]:
        if isinstance(outcome, Exception) and not isinstance(
                outcome, WebSocketDisconnect | RuntimeError | OSError):
            log.error("an /ws/agent-updates client failed", exc_info=outcome)
    if stopping.is_set():
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await ws.close(code=GOING_AWAY)

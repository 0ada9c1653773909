"""`EventStreamResponse`: a run's event log as an SSE stream, written straight to ASGI.

Replays the log after `Last-Event-ID`, follows the bus, sends a heartbeat comment when
idle, writes at most one batch per `min_interval` seconds (everything that arrived in
between goes out in that one write, token deltas merged), and ends after the run's end
event. A client disconnecting ends the stream, never the run. When the server shuts
down (`kernel.stopping`) the stream sends what the log holds and ends cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from armillary.events import coalesce, follow_run
from armillary.kernel import Kernel
from armillary_sse.render import HEARTBEAT, RenderCache

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, kernel: Kernel, run_id: str, *, after_seq: int, cache: RenderCache,
                 min_interval: float, heartbeat: float, retry_ms: int) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = list(HEADERS)
        self.kernel = kernel
        self.run_id = run_id
        self.after_seq = after_seq
        self.cache = cache
        self.min_interval = min_interval
        self.heartbeat = heartbeat
        self.retry_ms = retry_ms

    async def _pump(self, send: Send) -> None:
        kernel, render = self.kernel, self.cache.render
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "more_body": True,
                    "body": f"retry: {self.retry_ms}\n\n".encode()})
        last_flush = 0.0
        async for batch in follow_run(kernel.store, kernel.bus, self.run_id,
                                      after_seq=self.after_seq, idle_timeout=self.heartbeat,
                                      stop=kernel.stopping):
            body = b"".join(render(e) for e in coalesce(batch)) if batch else HEARTBEAT
            await send({"type": "http.response.body", "body": body, "more_body": True})
            now = time.monotonic()
            wait = self.min_interval - (now - last_flush)
            last_flush = now
            if wait > 0 and batch:
                await asyncio.sleep(wait)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        pump = asyncio.create_task(self._pump(send))
        watch = asyncio.create_task(disconnected())
        try:
            await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watch):
                task.cancel()
            for task in (pump, watch):
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task

"""`EventStreamResponse`: batches of events as an SSE stream, written straight to ASGI.

Writes `retry:` first, then each batch as one write (token deltas merged; a batch that is
empty — nothing happened for a while — is a heartbeat comment), at most one write per
`min_interval` seconds: everything that arrived in between goes out in the next write.
The stream ends when the batches do (a run's end event, the server shutting down). A
client disconnecting ends the stream at once (the batches' iterator is closed, its bus
subscription with it), never the run. Hand-written rather than a `StreamingResponse`:
it costs no task group per stream (see docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from armillary import HEARTBEAT, Event, SSERender, coalesce
from armillary_sse.render import RenderCache

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, batches: AsyncIterator[list[Event]], *, render: SSERender,
                 cache: RenderCache, min_interval: float, retry_ms: int,
                 with_ids: bool = True) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = list(HEADERS)
        self.batches = batches
        self.renderer = render
        self.cache = cache
        self.min_interval = min_interval
        self.retry_ms = retry_ms
        self.with_ids = with_ids

    def _body(self, batch: list[Event]) -> bytes:
        if not batch:
            return HEARTBEAT
        originals = {id(e) for e in batch}
        render, with_ids, cache = self.renderer, self.with_ids, self.cache
        # a merged token event carries the last merged event's id but more text: it is
        # rendered afresh, never cached under that id (another stream may not merge it)
        return b"".join(cache.render(e, render, with_id=with_ids) if id(e) in originals
                        else cache.encode(e, render, with_ids) for e in coalesce(batch))

    async def _pump(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "more_body": True,
                    "body": f"retry: {self.retry_ms}\n\n".encode()})
        async for batch in self.batches:
            body = self._body(batch)
            if body:
                await send({"type": "http.response.body", "body": body, "more_body": True})
            if batch and self.min_interval > 0:
                # the next write comes a whole interval after this one: what arrives
                # meanwhile waits in the subscription and goes out together (sleeping
                # only "the rest of the interval" allowed two writes per interval)
                await asyncio.sleep(self.min_interval)
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
            aclose = getattr(self.batches, "aclose", None)
            if aclose is not None:  # unsubscribes from the bus, even if never iterated
                with contextlib.suppress(Exception):
                    await aclose()

"""Stop work a client no longer waits for: the one disconnect mechanism.

A non-streaming route that awaits a slow provider keeps generating after the client has
hung up unless something watches the connection: `cancel_on_disconnect` does. A
streaming route answers with `WatchedStreamingResponse`, which watches for
`http.disconnect` the whole time (Starlette's `StreamingResponse` only notices on its
next write, so a slow model would keep generating for nobody), stops the stream at once
and then always runs `on_close` (shielded), where the upstream is closed and a partial
reply recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from armillary._errors import ArmillaryError

T = TypeVar("T")


class ClientDisconnected(ArmillaryError):
    """The client went away before the answer was ready (nobody receives this answer)."""

    code = "client_closed_request"
    status_code = 499


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it as soon as the client disconnects.

    Call it only after the request body has been read (FastAPI has done so for a route
    with a body model): the next message from the server is then the disconnect.
    Raises `ClientDisconnected` when the client left first."""
    task: asyncio.Future[T] = asyncio.ensure_future(work)

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                task.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if watcher.done() and not watcher.cancelled():
            raise ClientDisconnected("the client disconnected before the reply was ready") \
                from None
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


class WatchedStreamingResponse(StreamingResponse):
    """A streaming response that stops as soon as the client disconnects, closes its
    content iterator and then awaits `on_close()` (both shielded from cancellation)."""

    def __init__(self, content: AsyncIterator[str | bytes], *, media_type: str,
                 on_close: Callable[[], Awaitable[None]] | None = None,
                 headers: Mapping[str, str] | None = None, status_code: int = 200) -> None:
        super().__init__(content, status_code=status_code, media_type=media_type,
                         headers=headers)
        self._content = content
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    # ASGI 2.4 servers raise OSError on a write once the client is gone
                    with contextlib.suppress(OSError):
                        await self.stream_response(send)
                    group.cancel_scope.cancel()

                async def watch() -> None:
                    await self.listen_for_disconnect(receive)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                group.start_soon(watch)
        finally:
            with anyio.CancelScope(shield=True):
                aclose = getattr(self._content, "aclose", None)
                if aclose is not None:
                    await aclose()
                if self._on_close is not None:
                    await self._on_close()

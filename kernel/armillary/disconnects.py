"""Stop work a client no longer waits for.

A non-streaming route that awaits a slow provider keeps generating after the client has
hung up unless something watches the connection: `cancel_on_disconnect` does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from armillary.errors import ArmillaryError

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

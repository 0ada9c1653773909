"""Streaming a reply: plain text chunks or Server-Sent Events, and noticing a client leave.

Starlette's `StreamingResponse` only notices a disconnect on ASGI 2.4 servers when it next
writes, so a slow model would keep generating for nobody until its next token.
`ChatStreamResponse` watches for `http.disconnect` the whole time, cancels the stream at
once, and then runs `on_close` outside the cancelled scope, where the partial reply is
recorded and the upstream stream closed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

PLAIN_TEXT = "text/plain; charset=utf-8"
EVENT_STREAM = "text/event-stream"


def wants_sse(accept: str | None) -> bool:
    return bool(accept) and EVENT_STREAM in accept.lower()  # type: ignore[union-attr]


def sse(event: str, data: Mapping[str, Any]) -> str:
    """One SSE frame. JSON has no raw newlines, so `data` is always a single line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def plain_error_marker(code: str, detail: str) -> str:
    """How a plain-text stream ends when it fails: a line of its own, easy to spot."""
    return f"\n[error: {code}] {detail}\n"


def plain_tool_calls_marker(names: list[str]) -> str:
    """How a plain-text stream ends when the model asked for tools, which /chat does not
    run: a line of its own, so the reply is never silently empty."""
    return f"\n[tool_calls: {', '.join(names)}] the model asked for tools; /chat runs none\n"


class ChatStreamResponse(StreamingResponse):
    """A streaming response that stops as soon as the client disconnects and then always
    awaits `on_close()` (shielded from cancellation)."""

    def __init__(self, content: AsyncIterator[str], *, on_close: Callable[[], Awaitable[None]],
                 media_type: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
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
                await self._on_close()

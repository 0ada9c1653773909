"""`BodyReadTimeout`: a request body that stalls gets 408 `request_timeout`, not a hang.

A client that announces `Content-Length: 100` and sends 10 bytes (or a chunked body that
stops) would otherwise hold its connection and the route's task open for ever: uvicorn
bounds the wait for headers and for the next request on a kept-alive connection, but not
the wait for the rest of a body. This middleware bounds each wait for the next piece of
the body to `seconds` (`[kernel] body_read_timeout_seconds`): a body that keeps arriving,
however slowly, is read; one that stops for longer is answered `408` with
`{"detail": ..., "code": "request_timeout"}` and `Connection: close`, so the server closes
the connection, and the route sees the client as gone.

Only the body is timed: once it is complete, a route waiting on `receive()` for the
client to disconnect (a streaming response) waits as long as it likes.
"""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: what the app is told once the body timed out: the client is as good as gone
_GONE: Message = {"type": "http.disconnect"}


def _has_body(scope: Scope) -> bool:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            return value.strip() not in (b"", b"0")
        if key == b"transfer-encoding":
            return True
    return False


class BodyReadTimeout:
    """ASGI middleware: a request body silent for more than `seconds` between two pieces
    (or before the first) is answered 408 `request_timeout` and its connection closed.
    `seconds=None` turns it off."""

    def __init__(self, app: ASGIApp, seconds: float | None) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.seconds or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        seconds = self.seconds
        body_done = False
        timed_out = False
        answered = False  # the 408 went out: the app's own answer is dropped
        started = False

        async def timed_receive() -> Message:
            nonlocal body_done, timed_out, answered
            if timed_out:
                return _GONE
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), seconds)
            except TimeoutError:
                timed_out = True
                if not started:
                    answered = True
                    await self._refuse(scope, send, seconds)
                return _GONE
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except ClientDisconnect:
            # a route reading `request.body()` itself is told the client went away; the
            # 408 already said why, so this is no error to log
            if not timed_out:
                raise

    @staticmethod
    async def _refuse(scope: Scope, send: Send, seconds: float) -> None:
        response = JSONResponse(
            {"detail": f"the request body stalled: nothing arrived for {seconds:g}s",
             "code": "request_timeout"},
            status_code=408, headers={"Connection": "close"})

        async def nothing() -> Message:  # a JSONResponse reads nothing from the client
            return _GONE

        await response(scope, nothing, send)

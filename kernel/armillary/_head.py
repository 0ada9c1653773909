"""HEAD on every GET route: FastAPI registers GET routes for GET alone, so a HEAD (a load
balancer's or a monitor's probe, `curl -I`) would be 405. `HeadAsGet` serves HEAD as the
GET it stands for, with the same status and headers (Content-Length included, as RFC 9110
§9.3.2 allows) and no body. A streamed GET (an event stream) is told the client left as
soon as its headers are out, so it ends at once instead of streaming to nobody.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_GONE: Message = {"type": "http.disconnect"}


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        started = False
        finished = False

        async def head_receive() -> Message:
            if started:
                return _GONE
            return await receive()

        async def head_send(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
                await send(message)
            elif message["type"] == "http.response.body":
                if not finished:
                    finished = True
                    await send({"type": "http.response.body", "body": b"",
                                "more_body": False})
            else:
                await send(message)

        await self.app({**scope, "method": "GET"}, head_receive, head_send)

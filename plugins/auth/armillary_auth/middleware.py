"""`AuthMiddleware`: every HTTP request and WebSocket handshake but the public paths
needs a valid key or token; the principal is current (`armillary.current_principal()`)
while the route runs.

A pure ASGI middleware rather than a router dependency, so it covers every plugin's
routes — WebSockets included — without each plugin opting in.

Where a credential is looked for, first found wins: `X-API-Key`, `Authorization: Bearer`,
the `websocket_subprotocol` marker followed by the key in `Sec-WebSocket-Protocol`
(the marker is echoed on accept, as browsers require), then `?api_key=`.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from armillary import Principal, acting_as
from armillary_auth.keys import KeyRing
from armillary_auth.settings import AuthSettings
from armillary_auth.tokens import JWTVerifier, TokenError, looks_like_jwt

log = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: how a refused WebSocket is closed when the server cannot send an HTTP answer
WS_UNAUTHORIZED = 4401
WS_FORBIDDEN = 4403


class Refusal(Exception):
    def __init__(self, status: int, detail: str, code: str) -> None:
        super().__init__(detail)
        self.status, self.detail, self.code = status, detail, code


class AuthMiddleware:
    def __init__(self, app: ASGIApp, *, settings: AuthSettings,
                 environ: dict[str, str] | None = None) -> None:
        self.app = app
        self.settings = settings
        self.keys = KeyRing(settings, environ)
        self.jwt = JWTVerifier(settings.jwt) if settings.jwt is not None else None
        self.public = frozenset(settings.public_paths)
        self.admin_paths = tuple(settings.admin_paths)
        self.marker = settings.websocket_subprotocol
        self.query_param = settings.query_param
        ways = ["X-API-Key", "Authorization: Bearer"]
        if self.query_param:
            ways.append(f"?{self.query_param}=")
        if self.marker:
            ways.append(f"the {self.marker!r} WebSocket sub-protocol")
        #: the 401 for no credential names only the ways this configuration accepts
        self.missing = f"an API key is required: send {', '.join(ways[:-1])} or {ways[-1]}"
        if not len(self.keys) and self.jwt is None:
            log.warning("auth is on but no key is configured: every route but %s "
                        "answers 401", ", ".join(sorted(self.public)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        try:
            credential, offered = self._credential(scope)
            principal = await self._authenticate(credential)
            self._authorize(scope, principal)
        except Refusal as refusal:
            await self._refuse(scope, receive, send, refusal)
            return
        if offered:
            send = self._echo_marker(send)
        with acting_as(principal):
            await self.app(scope, receive, send)

    # --- finding and checking the credential -------------------------------------------

    def _credential(self, scope: Scope) -> tuple[str, bool]:
        """The key or token, and whether it came as a WebSocket sub-protocol."""
        bearer = protocols = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                return value.decode("latin-1").strip(), False
            if name == b"authorization":
                scheme, _, rest = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and rest.strip():
                    bearer = rest.strip()
            elif name == b"sec-websocket-protocol":
                protocols = value.decode("latin-1")
        if bearer is not None:
            return bearer, False
        if protocols is not None and self.marker:
            offered = [p.strip() for p in protocols.split(",")]
            if self.marker in offered:
                at = offered.index(self.marker)
                if at + 1 < len(offered) and offered[at + 1]:
                    return offered[at + 1], True
        if self.query_param and scope.get("query_string"):
            for key, value in parse_qsl(scope["query_string"].decode("latin-1")):
                if key == self.query_param and value:
                    return value, False
        raise Refusal(401, self.missing, "unauthorized")

    async def _authenticate(self, credential: str) -> Principal:
        principal = self.keys.find(credential)
        if principal is not None:
            return principal
        if self.jwt is not None and looks_like_jwt(credential):
            try:
                return await self.jwt.verify(credential)
            except TokenError as exc:
                raise Refusal(401, str(exc), "invalid_token") from None
        raise Refusal(401, "the API key is not valid", "unauthorized")

    def _authorize(self, scope: Scope, principal: Principal) -> None:
        if principal.is_admin:
            return
        path = scope["path"]
        if any(path.startswith(p) for p in self.admin_paths):
            needed = "admin"
        elif scope["type"] == "websocket":
            needed = self.settings.websocket_scope
        else:
            needed = "read" if scope["method"] in READ_METHODS else "submit"
        if needed not in principal.scopes:
            raise Refusal(403, f"key {principal.name!r} lacks the {needed!r} scope",
                          "insufficient_scope")

    # --- answering -------------------------------------------------------------------

    def _echo_marker(self, send: Send) -> Send:
        async def echoing(message: Message) -> None:
            if message["type"] == "websocket.accept" and not message.get("subprotocol"):
                message = {**message, "subprotocol": self.marker}
            await send(message)
        return echoing

    async def _refuse(self, scope: Scope, receive: Receive, send: Send,
                      refusal: Refusal) -> None:
        body = json.dumps({"detail": refusal.detail, "code": refusal.code}).encode()
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]
        if refusal.status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="armillary"'))
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": refusal.status,
                        "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        message = await receive()  # websocket.connect
        if message["type"] != "websocket.connect":
            return
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": refusal.status,
                        "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:  # the server answers the handshake 403
            await send({"type": "websocket.close", "reason": refusal.code,
                        "code": WS_UNAUTHORIZED if refusal.status == 401 else WS_FORBIDDEN})

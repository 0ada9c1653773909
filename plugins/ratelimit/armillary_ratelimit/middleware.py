"""`RateLimitMiddleware`: one `limits` hit per request against the caller's limit for
the request's class; 429 `rate_limited` with `Retry-After`, `RateLimit-*` and
`X-RateLimit-*` headers when it is spent.

The caller is the authenticated principal (`armillary.current_principal()`, so this
sits inside the auth middleware), else the client's address. The decision is the
storage's own atomic `hit` (a Lua script on Redis), with no local pre-check, so several
instances sharing a Redis enforce one limit; the headers' numbers are read after it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from fnmatch import fnmatch
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from armillary import RunStatus, current_principal
from armillary_ratelimit.settings import RateLimitSettings

log = logging.getLogger(__name__)

ACTIVE = [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED]


def storage_uri(uri: str) -> str:
    return uri if uri.startswith("async+") else f"async+{uri}"


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, settings: RateLimitSettings) -> None:
        from limits import parse
        from limits.aio import strategies
        from limits.storage import storage_from_string

        self.app = app
        self.settings = settings
        uri = storage_uri(settings.storage)
        options: dict[str, Any] = {}
        if "redis" in uri:
            options = {"key_prefix": settings.key_prefix, "connect_timeout": 1.0,
                       "stream_timeout": 1.0}
        self.storage = storage_from_string(uri, **options)
        limiter = {"moving-window": strategies.MovingWindowRateLimiter,
                   "fixed-window": strategies.FixedWindowRateLimiter,
                   "sliding-window-counter": strategies.SlidingWindowCounterRateLimiter,
                   }[settings.strategy]
        self.limiter = limiter(self.storage)
        self.classes = [(name, parse(c.limit), frozenset(c.methods or ()), tuple(c.paths))
                        for name, c in settings.classes.items()]
        self.exempt = frozenset(settings.exempt_paths)
        #: refusals and storage failures, also `kernel.state["ratelimit"]` once serving
        self.counts = {"refused": 0, "storage_errors": 0}
        self._published = False
        self._last_error_log = 0.0

    def _class_of(self, method: str, path: str) -> tuple[str, Any] | None:
        for name, item, methods, prefixes in self.classes:
            if (not methods or method in methods) and path.startswith(prefixes):
                return name, item
        return None

    def _caller(self, scope: Scope) -> str:
        principal = current_principal()
        if principal is not None:
            return f"key:{principal.name}"
        if self.settings.trust_forwarded_for:
            for name, value in scope["headers"]:
                if name == b"x-forwarded-for":
                    return "ip:" + value.decode("latin-1").split(",")[0].strip()
        client = scope.get("client")
        return f"ip:{client[0] if client else 'unknown'}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if not self._published:
            self._publish(scope)
        method = scope.get("method", "GET")  # a WebSocket handshake counts as a GET
        found = self._class_of(method, scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        name, item = found
        caller = self._caller(scope)
        prefix = self.settings.key_prefix
        try:
            allowed = await self.limiter.hit(item, prefix, name, caller)
            stats = await self.limiter.get_window_stats(item, prefix, name, caller)
        except Exception as exc:  # the storage is down: the setting decides
            self._storage_failed(exc)
            if self.settings.fail_open:
                await self.app(scope, receive, send)
            else:
                await self._answer(scope, receive, send, 503, {
                    "detail": "the rate-limit storage cannot be reached",
                    "code": "rate_limit_unavailable"}, [])
            return
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        headers = [(b"ratelimit-limit", str(item.amount).encode()),
                   (b"ratelimit-remaining", str(max(stats.remaining, 0)).encode()),
                   (b"ratelimit-reset", str(reset).encode()),
                   (b"ratelimit-policy",
                    f"{item.amount};w={item.get_expiry()}".encode()),
                   (b"x-ratelimit-limit", str(item.amount).encode()),
                   (b"x-ratelimit-remaining", str(max(stats.remaining, 0)).encode()),
                   (b"x-ratelimit-reset", str(math.ceil(stats.reset_time)).encode())]
        if not allowed:
            self.counts["refused"] += 1
            await self._answer(scope, receive, send, 429, {
                "detail": f"rate limit for {name!r} requests exceeded ({item}); retry in "
                          f"{max(reset, 1)} s", "code": "rate_limited",
                "limit": str(item), "retry_after": max(reset, 1)},
                [(b"retry-after", str(max(reset, 1)).encode()), *headers])
            return
        if self.settings.max_concurrent_runs is not None and \
                await self._too_many_runs(scope, method):
            return await self._answer(scope, receive, send, 429, {
                "detail": f"at most {self.settings.max_concurrent_runs} runs at once per "
                          f"caller; wait for one to finish", "code": "too_many_runs"},
                [(b"retry-after", b"1")])
        if scope["type"] == "http":
            send = self._with_headers(send, headers)
        await self.app(scope, receive, send)

    async def _too_many_runs(self, scope: Scope, method: str) -> bool:
        target = f"{method} {scope['path']}"
        if not any(fnmatch(target, p) for p in self.settings.run_routes):
            return False
        principal = current_principal()
        kernel = getattr(getattr(scope.get("app"), "state", None), "kernel", None)
        if principal is None or kernel is None:
            return False  # runs are owned by principals: anonymous callers are not counted
        active = await kernel.store.count_runs(status=ACTIVE, owner=principal.name)
        if active >= (self.settings.max_concurrent_runs or 0):
            self.counts["refused"] += 1
            return True
        return False

    def _publish(self, scope: Scope) -> None:
        self._published = True
        kernel = getattr(getattr(scope.get("app"), "state", None), "kernel", None)
        if kernel is not None:
            kernel.state["ratelimit"] = self.counts

    def _storage_failed(self, exc: Exception) -> None:
        self.counts["storage_errors"] += 1
        now = time.monotonic()
        if now - self._last_error_log >= 10:  # once per 10 s, with the running count
            self._last_error_log = now
            log.warning("rate-limit storage %s failed (%s: %s; %d failures so far): "
                        "failing %s", self.settings.storage.split("@")[-1],
                        type(exc).__name__, exc, self.counts["storage_errors"],
                        "open" if self.settings.fail_open else "closed")

    @staticmethod
    def _with_headers(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *headers]}
            await send(message)
        return sending

    @staticmethod
    async def _answer(scope: Scope, receive: Receive, send: Send, status: int,
                      body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
        data = json.dumps(body).encode()
        all_headers = [(b"content-type", b"application/json"),
                       (b"content-length", str(len(data)).encode()), *headers]
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": status,
                        "headers": all_headers})
            await send({"type": "http.response.body", "body": data})
            return
        if (await receive())["type"] != "websocket.connect":
            return
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": status,
                        "headers": all_headers})
            await send({"type": "websocket.http.response.body", "body": data})
        else:
            await send({"type": "websocket.close", "code": 4429, "reason": body["code"]})

"""`RateLimitMiddleware`: one `limits` hit per request against the caller's limit for
the request's class; 429 `rate_limited` with `Retry-After`, `RateLimit-*` and
`X-RateLimit-*` headers when it is spent.

The caller is the authenticated principal (`armillary.current_principal()`, so this
sits inside the auth middleware), else the client's address. The decision is the
storage's own atomic `hit` (a Lua script on Redis), with no local pre-check, so several
instances sharing a Redis enforce one limit; the headers' numbers are read after it.

With `tokens_per_window`, a model-using request (`token_routes`) of an authenticated key
also reserves from the key's token budget (`armillary_ratelimit.budget`): 429
`token_budget_exceeded` when less than `reserve_tokens` is left. Refusals and storage
failures are `ratelimit.refused` / `ratelimit.storage_error` events on the firehose.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from fnmatch import fnmatch
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from armillary import RunStatus, current_principal, redact_text, redact_url
from armillary_ratelimit.budget import TokenBudget
from armillary_ratelimit.settings import RateLimitSettings

log = logging.getLogger(__name__)

ACTIVE = [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED]


#: where `startup` puts the `TokenBudget` in `kernel.state`
BUDGET_STATE = "ratelimit.budget"


def storage_uri(uri: str) -> str:
    return uri if uri.startswith("async+") else f"async+{uri}"


def make_storage(settings: RateLimitSettings) -> Any:
    """The `limits` async storage the settings name (Redis: short timeouts, so a
    storage that is down fails a request fast)."""
    from limits.storage import storage_from_string

    uri = storage_uri(settings.storage)
    options: dict[str, Any] = {}
    if "redis" in uri:
        options = {"key_prefix": settings.key_prefix, "connect_timeout": 1.0,
                   "stream_timeout": 1.0}
    return storage_from_string(uri, **options)


def limit_headers(limit: int, remaining: int, reset: int, window: int, *,
                  unit: bytes = b"") -> list[tuple[bytes, bytes]]:
    """`RateLimit-*` (reset in seconds) and `X-RateLimit-*` (reset in epoch seconds);
    a token budget's carry a `-Tokens` infix so they do not hide the request limit's."""
    infix = b"-" + unit if unit else b""
    remaining = max(remaining, 0)
    return [(b"ratelimit" + infix + b"-limit", str(limit).encode()),
            (b"ratelimit" + infix + b"-remaining", str(remaining).encode()),
            (b"ratelimit" + infix + b"-reset", str(reset).encode()),
            (b"ratelimit" + infix + b"-policy", f"{limit};w={window}".encode()),
            (b"x-ratelimit" + infix + b"-limit", str(limit).encode()),
            (b"x-ratelimit" + infix + b"-remaining", str(remaining).encode()),
            (b"x-ratelimit" + infix + b"-reset", str(math.ceil(time.time() + reset)).encode())]


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, settings: RateLimitSettings) -> None:
        from limits import parse
        from limits.aio import strategies

        self.app = app
        self.settings = settings
        self.storage = make_storage(settings)
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
        self.kernel: Any = None

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
        route_class = found[0] if found is not None else "none"
        headers: list[tuple[bytes, bytes]] = []
        if found is not None:
            name, item = found
            caller = self._caller(scope)
            prefix = self.settings.key_prefix
            try:
                allowed = await self.limiter.hit(item, prefix, name, caller)
                stats = await self.limiter.get_window_stats(item, prefix, name, caller)
            except Exception as exc:  # the storage is down: the setting decides
                await self._storage_failed(scope, receive, send, exc)
                return
            reset = max(0, math.ceil(stats.reset_time - time.time()))
            headers = limit_headers(item.amount, stats.remaining, reset, item.get_expiry())
            if not allowed:
                self._refused("requests", name)
                await self._answer(scope, receive, send, 429, {
                    "detail": f"rate limit for {name!r} requests exceeded ({item}); retry "
                              f"in {max(reset, 1)} s", "code": "rate_limited",
                    "limit": str(item), "retry_after": max(reset, 1)},
                    [(b"retry-after", str(max(reset, 1)).encode()), *headers])
                return
        budget = self._budget()
        run_route = (self.settings.max_concurrent_runs is not None or budget is not None) \
            and self._matches(self.settings.run_routes, method, scope["path"])
        if self.settings.max_concurrent_runs is not None and run_route and \
                await self._too_many_runs():
            self._refused("concurrent_runs", route_class)
            return await self._answer(scope, receive, send, 429, {
                "detail": f"at most {self.settings.max_concurrent_runs} runs at once per "
                          f"caller; wait for one to finish", "code": "too_many_runs"},
                [(b"retry-after", b"1")])
        principal = current_principal() if budget is not None else None
        if budget is None or principal is None or scope["type"] != "http" or \
                not self._matches(self.settings.token_routes, method, scope["path"]):
            if scope["type"] == "http" and headers:
                send = self._with_headers(send, headers)
            await self.app(scope, receive, send)
            return
        try:
            reservation, usage = await budget.reserve(principal.name, hold=run_route)
        except Exception as exc:
            await self._storage_failed(scope, receive, send, exc)
            return
        token_headers = limit_headers(usage.limit, usage.remaining, usage.reset_s,
                                      usage.window_s, unit=b"tokens")
        if reservation is None:
            self._refused("tokens", route_class)
            await self._answer(scope, receive, send, 429, {
                "detail": f"key {principal.name!r} has {usage.remaining} of its "
                          f"{usage.limit} tokens per {self.settings.token_window} left, less "
                          f"than the {budget.reserve_tokens} a request reserves; retry in "
                          f"{usage.reset_s} s", "code": "token_budget_exceeded",
                "limit": f"{usage.limit} tokens per {self.settings.token_window}",
                "retry_after": usage.reset_s},
                [(b"retry-after", str(usage.reset_s).encode()),
                 *limit_headers(usage.limit, usage.remaining, usage.reset_s,
                                usage.window_s), *token_headers])
            return
        status = 500
        original = send

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *headers,
                                                  *token_headers]}
            await original(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if not run_route or status >= 400:
                # answered in the request (or refused): a reservation no call settled
                # is given back now
                with contextlib.suppress(Exception):
                    await asyncio.shield(budget.release(reservation))

    @staticmethod
    def _matches(patterns: list[str], method: str, path: str) -> bool:
        target = f"{method} {path}"
        return any(fnmatch(target, p) for p in patterns)

    def _budget(self) -> TokenBudget | None:
        if self.kernel is None:
            return None
        budget: TokenBudget | None = self.kernel.state.get(BUDGET_STATE)
        return budget

    def _refused(self, limit: str, route_class: str) -> None:
        self.counts["refused"] += 1
        self._emit("ratelimit.refused", {"limit": limit, "route_class": route_class})

    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        """A `ratelimit.*` event on the firehose (not in any run's log)."""
        if self.kernel is not None:
            self.kernel.announce(kind, payload, scope="ratelimit")

    async def _too_many_runs(self) -> bool:
        principal = current_principal()
        kernel = self.kernel
        if principal is None or kernel is None:
            return False  # runs are owned by principals: anonymous callers are not counted
        active = await kernel.store.count_runs(status=ACTIVE, owner=principal.name)
        return bool(active >= (self.settings.max_concurrent_runs or 0))

    def _publish(self, scope: Scope) -> None:
        self._published = True
        kernel = getattr(getattr(scope.get("app"), "state", None), "kernel", None)
        if kernel is not None:
            self.kernel = kernel
            kernel.state["ratelimit"] = self.counts

    async def _storage_failed(self, scope: Scope, receive: Receive, send: Send,
                              exc: Exception) -> None:
        self._log_storage_error(exc)
        self._emit("ratelimit.storage_error",
                   {"fail": "open" if self.settings.fail_open else "closed"})
        if self.settings.fail_open:
            await self.app(scope, receive, send)
        else:
            await self._answer(scope, receive, send, 503, {
                "detail": "the rate-limit storage cannot be reached",
                "code": "rate_limit_unavailable"}, [])

    def _log_storage_error(self, exc: Exception) -> None:
        self.counts["storage_errors"] += 1
        now = time.monotonic()
        if now - self._last_error_log >= 10:  # once per 10 s, with the running count
            self._last_error_log = now
            log.warning("rate-limit storage %s failed (%s: %s; %d failures so far): "
                        "failing %s", redact_url(self.settings.storage),
                        type(exc).__name__, redact_text(str(exc)), self.counts["storage_errors"],
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

"""`ObservedApp`: one pure-ASGI middleware for request ids and HTTP metrics.

Per HTTP request: the request id (the caller's `X-Request-ID` when it is well formed,
else a new one) is set in a context variable for the logs and sent back on the answer;
when the answer is complete, one counter and one histogram sample are taken, labelled by
method, route *template* (`/v1/tasks/{task_id}`, never the raw path, so ids cannot grow
the exposition) and status class (`2xx`). An answer that is an SSE stream
(`text/event-stream`) and every WebSocket count as streams instead (open now, opened,
how long), labelled by transport and route. A 429 also counts as a rate-limit refusal.

It sits at `order=5`, outside CORS and the kernel's body limits, so it sees every answer
(401s, 408s, 413s, 429s included). Routes are resolved after the app ran: the router
leaves the matched route in the scope; answers given before routing (an auth or rate-limit
middleware, a body limit) are matched against the route table here, and requests that
match no route read `(unmatched)`.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from armillary import Kernel
    from armillary_metrics.collectors import Metrics

#: the request being served (None outside a request); every log record created while it
#: is set carries it as `request_id` (see `install_log_record_factory`)
REQUEST_ID: ContextVar[str | None] = ContextVar("armillary_request_id", default=None)
UNMATCHED = "(unmatched)"
#: what a caller's request id may look like to be kept (else a new one is made)
_GOOD_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATUS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
_factory_installed = False
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def install_log_record_factory() -> None:
    """Make every log record created during a request carry `request_id` (which the
    kernel's JSON log format writes). Once per process; records outside a request are
    left as they are. Code that logs must not pass `request_id` in `extra=`."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        request_id = REQUEST_ID.get()
        if request_id is not None:
            record.request_id = request_id
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


def status_class(status: int) -> str:
    return _STATUS.get(status // 100, "none")


class RouteTemplates:
    """Route object → its path template, from the kernel's registered routers (the
    router's prefix included), and the templates as patterns for answers given before
    routing."""

    def __init__(self, kernel: Kernel) -> None:
        self.by_route: dict[int, str] = {}
        patterns: list[tuple[re.Pattern[str], str]] = []
        for entry in kernel.registry.routers:
            for route in entry.router.routes:
                path = getattr(route, "path", None)
                if not isinstance(path, str):
                    continue
                template = entry.prefix + path
                self.by_route[id(route)] = template
                patterns.append((compile_path(template)[0], template))
        self.patterns = patterns

    def of(self, scope: Scope, status: int) -> str:
        route = scope.get("route")
        if route is not None:
            template = self.by_route.get(id(route))
            if template is not None:
                return template
            path = getattr(route, "path_format", None) or getattr(route, "path", None)
            if isinstance(path, str):
                return path
        if status == 404:  # the router looked already and found nothing
            return UNMATCHED
        path = scope.get("path", "")
        for pattern, template in self.patterns:
            if pattern.match(path):
                return template
        return UNMATCHED


class ObservedApp:
    """The middleware (see the module doc). `header` names the request id header;
    `trust` keeps a well-formed incoming id; `measure` turns the metrics on."""

    def __init__(self, app: ASGIApp, *, header: str = "X-Request-ID", trust: bool = True,
                 measure: bool = True) -> None:
        self.app = app
        self.header = header.lower().encode("latin-1")
        self.trust = trust
        self.measure = measure
        self._kernel: Kernel | None = None
        self._routes: RouteTemplates | None = None

    def _metrics(self, scope: Scope) -> Metrics | None:
        kernel = self._kernel
        if kernel is None:
            app = scope.get("app")
            state = getattr(app, "state", None)
            kernel = self._kernel = getattr(state, "kernel", None)
            if kernel is None:
                return None
        state = kernel.state.get("metrics")  # an `armillary_metrics.MetricsState`
        if state is None:
            return None
        metrics: Metrics = state.metrics
        if self._routes is None:
            self._routes = RouteTemplates(kernel)
        return metrics

    def _request_id(self, scope: Scope) -> str:
        if self.trust:
            for key, value in scope["headers"]:
                if key == self.header:
                    text: str = value.decode("latin-1")
                    if _GOOD_ID.fullmatch(text):
                        return text
                    break
        # 16 random hex digits per process, then a counter: unique without a syscall
        return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope)
        token = REQUEST_ID.set(request_id)
        try:
            metrics = self._metrics(scope) if self.measure else None
            if kind == "websocket":
                await self._websocket(scope, receive, send, request_id, metrics)
            else:
                await self._http(scope, receive, send, request_id, metrics)
        finally:
            REQUEST_ID.reset(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str,
                    metrics: Metrics | None) -> None:
        header = (self.header, request_id.encode("latin-1"))
        status = 0
        stream: tuple[str, float] | None = None  # (route, opened at) of an SSE answer

        async def observed_send(message: Message) -> None:
            nonlocal status, stream
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if metrics is not None and self._routes is not None:
                    for key, value in headers:
                        if key == b"content-type" and value.startswith(b"text/event-stream"):
                            route = self._routes.of(scope, status)
                            stream = (route, time.perf_counter())
                            metrics.streams.labels("sse", route).inc()
                            metrics.streams_open.labels("sse", route).inc()
                            break
                headers.append(header)
                message["headers"] = headers
            await send(message)

        if metrics is None:
            await self.app(scope, receive, observed_send)
            return
        http = metrics.http
        http.in_progress += 1
        started = time.perf_counter()
        try:
            await self.app(scope, receive, observed_send)
        except Exception:
            status = status or 500  # the server's error middleware answers 500
            raise
        finally:
            elapsed = time.perf_counter() - started
            http.in_progress -= 1
            routes = self._routes
            assert routes is not None
            route = stream[0] if stream is not None else routes.of(scope, status)
            method = scope["method"]
            if method not in _METHODS:
                method = "other"
            if stream is not None:
                metrics.streams_open.labels("sse", route).dec()
                metrics.stream_duration.labels("sse", route).observe(
                    time.perf_counter() - stream[1])
                http.observe(method, route, status_class(status), None)
            else:
                http.observe(method, route, status_class(status), elapsed)
            if status == 429:
                metrics.rate_limited.labels(route).inc()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, request_id: str,
                         metrics: Metrics | None) -> None:
        header = (self.header, request_id.encode("latin-1"))
        opened: tuple[str, float] | None = None

        async def observed_send(message: Message) -> None:
            nonlocal opened
            if message["type"] == "websocket.accept":
                message["headers"] = [*message.get("headers", ()), header]
                if metrics is not None and self._routes is not None:
                    route = self._routes.of(scope, 101)
                    opened = (route, time.perf_counter())
                    metrics.streams.labels("websocket", route).inc()
                    metrics.streams_open.labels("websocket", route).inc()
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            if opened is not None and metrics is not None:
                metrics.streams_open.labels("websocket", opened[0]).dec()
                metrics.stream_duration.labels("websocket", opened[0]).observe(
                    time.perf_counter() - opened[1])

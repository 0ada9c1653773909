"""Request metrics for GET /system/status, and the `X-Response-Time` header.

`RequestMetricsMiddleware` is plain ASGI (no BaseHTTPMiddleware: streamed answers stay
streamed). It finds this kernel's `RequestMetrics` in `kernel.state["agents"]`
(through `scope["app"].state.kernel`), so it counts nothing before startup.

- `total_requests`: HTTP requests answered (WebSocket connections are not requests).
- `avg_response_time`: the mean time from a request to the end of its answer, over the
  newest `response_time_window` requests, in whole milliseconds (`avg_response_time_us`:
  the same in microseconds). Integers because the seed's model types `api_metrics` as
  `Dict[str, int]`: a seed client validating with it refuses a fractional number.
- `error_count`: answers with a 5xx status, and requests whose handler raised.
- `current_connections` / `peak_concurrent_connections`: HTTP requests in progress plus
  open WebSockets, now and at most since startup.
- `X-Response-Time`: the time until the answer's headers went out, as `12.34ms` (for a
  stream that is the time to its first byte; the whole stream counts in the average),
  on every answer, the 500 of a handler that raised included.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from armillary import ArmillaryError, to_json


class RequestMetrics:
    def __init__(self, window: int = 1000) -> None:
        self.started_at = time.time()
        self.total_requests = 0
        self.error_count = 0
        self.current_connections = 0
        self.peak_concurrent_connections = 0
        self.durations: deque[float] = deque(maxlen=window)

    def opened(self) -> None:
        self.current_connections += 1
        if self.current_connections > self.peak_concurrent_connections:
            self.peak_concurrent_connections = self.current_connections

    def closed(self) -> None:
        self.current_connections -= 1

    def answered(self, duration: float, *, error: bool) -> None:
        self.total_requests += 1
        self.durations.append(duration)
        if error:
            self.error_count += 1

    def as_dict(self) -> dict[str, int]:
        durations = self.durations
        mean = sum(durations) / len(durations) if durations else 0.0
        return {
            "total_requests": self.total_requests,
            "avg_response_time": round(mean * 1000),
            "avg_response_time_us": round(mean * 1_000_000),
            "error_count": self.error_count,
            "uptime_seconds": int(time.time() - self.started_at),
            "peak_concurrent_connections": self.peak_concurrent_connections,
            "current_connections": self.current_connections,
        }


async def send_internal_error(exc: Exception, send: Send) -> None:
    """The kernel's 500 for a handler that raised (the same body its handler renders),
    sent from here so it carries `X-Response-Time` too. The exception goes on up: the
    kernel's handler still logs it, and finds the answer already sent."""
    body = to_json(ArmillaryError(f"internal error: {type(exc).__name__}").to_dict()).encode()
    await send({"type": "http.response.start", "status": 500, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def metrics_of(scope: Scope) -> RequestMetrics | None:
    app = scope.get("app")
    kernel = getattr(getattr(app, "state", None), "kernel", None)
    state = getattr(kernel, "state", {}).get("agents")
    return getattr(state, "metrics", None)


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        metrics = metrics_of(scope) if kind in ("http", "websocket") else None
        if metrics is None:
            await self.app(scope, receive, send)
            return
        metrics.opened()
        if kind == "websocket":
            try:
                await self.app(scope, receive, send)
            finally:
                metrics.closed()
            return
        start = time.perf_counter()
        status = 0

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                took = (time.perf_counter() - start) * 1000
                headers = list(message.get("headers", ()))
                headers.append((b"x-response-time", f"{took:.2f}ms".encode()))
                message = {**message, "headers": headers}
            await send(message)

        raised = False
        try:
            await self.app(scope, receive, timed_send)
        except Exception as exc:  # (a client that went away, CancelledError, is not one)
            raised = True
            if status == 0:  # nothing sent yet: answer the 500 here, timed like any other
                with contextlib.suppress(Exception):
                    await send_internal_error(exc, timed_send)
            raise
        finally:
            metrics.closed()
            metrics.answered(time.perf_counter() - start, error=raised or status >= 500)

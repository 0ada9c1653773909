"""`SSEStreams`: the `sse` plugin's implementation of `armillary.EventStreams`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response

from armillary import Event, EventStreams, Kernel, SSERender, follow_run, follow_topic, render_event
from armillary_sse.render import RenderCache
from armillary_sse.response import EventStreamResponse
from armillary_sse.settings import SSESettings


class SSEStreams(EventStreams):
    """Server-Sent Events with the plugin's settings (`[plugins.sse]`): one render cache
    shared by every stream, so an event followed by many clients is rendered once."""

    def __init__(self, settings: SSESettings) -> None:
        self.settings = settings
        self.cache = RenderCache(settings.render_cache_size)

    def _response(self, batches: AsyncIterator[list[Event]], render: SSERender | None,
                  with_ids: bool) -> Response:
        return EventStreamResponse(batches, render=render or render_event, cache=self.cache,
                                   min_interval=self.settings.min_interval_seconds,
                                   retry_ms=self.settings.retry_ms, with_ids=with_ids)

    def sse(self, request: Request, run_id: str, *, after_seq: int = 0,
            render: SSERender | None = None) -> Response:
        kernel: Kernel = request.app.state.kernel
        batches = follow_run(kernel.store, kernel.bus, run_id, after_seq=after_seq,
                             idle_timeout=self.settings.heartbeat_seconds,
                             stop=kernel.stopping)
        return self._response(batches, render, with_ids=True)

    def sse_topic(self, request: Request, topic: str, *,
                  render: SSERender | None = None) -> Response:
        kernel: Kernel = request.app.state.kernel
        batches = follow_topic(kernel.bus, topic, idle_timeout=self.settings.heartbeat_seconds,
                               stop=kernel.stopping)
        return self._response(batches, render, with_ids=False)

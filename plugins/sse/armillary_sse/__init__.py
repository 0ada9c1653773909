"""Armillary plugin `sse`: Server-Sent Events for `GET /v1/stream/tasks/{task_id}`.

The seed's event names (`step`, `plan_update`, `tool_call`, `memory_summary`, `log`, the
run lifecycle events named after the status entered, `token`), `id:` = the event's `seq`
so `Last-Event-ID` (header, or `?last_event_id=`) resumes with no loss and no duplicate,
heartbeat comments, and at most one write per `min_interval_seconds` (back-pressure).
Settings in `[plugins.sse]` (`SSESettings`). The WebSocket side of the path is `tasks`'.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from armillary import hookimpl
from armillary.deps import KernelDep
from armillary.errors import ArmillaryError, NotFound
from armillary.hookspecs import RegisterRouter


class SSESettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: one write per stream at most this often (0.2 s = the seed's 5 messages/s)
    min_interval_seconds: float = Field(default=0.2, ge=0)
    #: a heartbeat comment after this many idle seconds
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    #: the reconnect delay suggested to clients (`retry:`)
    retry_ms: int = Field(default=3000, ge=0)
    #: rendered events kept for reuse across streams
    render_cache_size: int = Field(default=4096, ge=0)


class NotAcceptable(ArmillaryError):
    code = "not_acceptable"
    status_code = 406


def _wants_sse(accept: str | None) -> bool:
    if not accept:
        return True
    return any(part.split(";")[0].strip() in ("text/event-stream", "*/*", "text/*")
               for part in accept.split(","))


def make_router(settings: SSESettings) -> APIRouter:
    from armillary_sse.render import RenderCache
    from armillary_sse.response import EventStreamResponse

    cache = RenderCache(settings.render_cache_size)
    router = APIRouter(tags=["streaming"])

    @router.get("/v1/stream/tasks/{task_id}", response_class=Response, responses={
        200: {"content": {"text/event-stream": {}}, "description": "The task's events"},
        404: {"description": "No such task (`task_not_found`)"}})
    async def stream_task(task_id: str, request: Request, kernel: KernelDep,
                          last_event_id_header: Annotated[
                              str | None, Header(alias="last-event-id")] = None,
                          last_event_id: Annotated[int | None, Query(ge=0)] = None
                          ) -> EventStreamResponse:
        """Live events of a task as Server-Sent Events (replay, then follow, then end)."""
        if not _wants_sse(request.headers.get("accept")):
            raise NotAcceptable("this path serves text/event-stream (or a WebSocket upgrade)")
        after = last_event_id or 0
        if last_event_id_header:
            try:
                after = max(int(last_event_id_header.strip()), 0)
            except ValueError:
                after = 0
        if await kernel.store.get_run(task_id) is None:
            raise NotFound(f"no task {task_id!r}", code="task_not_found")
        return EventStreamResponse(kernel, task_id, after_seq=after, cache=cache,
                                   min_interval=settings.min_interval_seconds,
                                   heartbeat=settings.heartbeat_seconds,
                                   retry_ms=settings.retry_ms)

    return router


@hookimpl
def settings_model() -> type[SSESettings]:
    return SSESettings


@hookimpl
def register_routers(register: RegisterRouter, settings: SSESettings) -> None:
    register(make_router(settings))

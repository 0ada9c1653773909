"""Armillary plugin `sse`: Server-Sent Events for `GET /v1/stream/tasks/{task_id}`.

The seed's event names (`step`, `plan_update`, `tool_call`, `memory_summary`, `log`, the
run lifecycle events named after the status entered, `token`), `id:` = the event's `seq`
so `Last-Event-ID` (header, or `?last_event_id=`) resumes with no loss and no duplicate
(a value that is not a whole number from 0 to 2**53 - 1 is a 422 `validation_error`
before the stream starts, never a stream that breaks off), heartbeat comments, and at
most one write per `min_interval_seconds` (back-pressure).
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


#: the largest `Last-Event-ID` taken: 2**53 - 1, the largest integer every JSON client
#: (JavaScript's included) holds exactly; event `seq`s are far below it
MAX_EVENT_ID = 2**53 - 1


def make_router(settings: SSESettings) -> APIRouter:
    from armillary_sse.render import RenderCache
    from armillary_sse.response import EventStreamResponse

    cache = RenderCache(settings.render_cache_size)
    router = APIRouter(tags=["streaming"])

    # the return annotation is `Response`, not `EventStreamResponse`: under
    # `from __future__ import annotations` FastAPI resolves it from the module's globals,
    # and a name imported in this function is not there (the OpenAPI document was a 500)
    @router.get("/v1/stream/tasks/{task_id}", response_class=EventStreamResponse,
                status_code=200, responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
              "description": "The task's events as Server-Sent Events: `id:` (the event's "
                             "`seq`), `event:` (its type), `data:` (its JSON payload); "
                             "heartbeat comments while idle; the stream ends after the "
                             "task's end event"},
        404: {"description": "No such task (`task_not_found`)"},
        406: {"description": "`Accept` does not allow `text/event-stream` "
                             "(`not_acceptable`)"},
        422: {"description": "`Last-Event-ID` or `last_event_id` is not a whole number "
                             f"from 0 to {MAX_EVENT_ID} (`validation_error`); refused "
                             "before the stream starts"}})
    async def stream_task(task_id: str, request: Request, kernel: KernelDep,
                          last_event_id_header: Annotated[int | None, Header(
                              alias="last-event-id", ge=0, le=MAX_EVENT_ID,
                              description="Resume after this event (what EventSource "
                                          "sends on reconnect); wins over the query")] = None,
                          last_event_id: Annotated[int | None, Query(
                              ge=0, le=MAX_EVENT_ID, description="Resume after this event")] = None
                          ) -> Response:
        """Live events of a task as Server-Sent Events (replay, then follow, then end)."""
        if not _wants_sse(request.headers.get("accept")):
            raise NotAcceptable("this path serves text/event-stream (or a WebSocket upgrade)")
        after = last_event_id_header if last_event_id_header is not None else \
            last_event_id or 0
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

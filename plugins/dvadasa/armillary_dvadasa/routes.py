"""The seed's routes: POST /v1/sessions, POST /v1/sessions/{id}/prompt, WebSocket
/v1/sessions/{id}/stream (and GET /v1/sessions/{id}, the session with its history).

The WebSocket: the client sends `{"prompt": "…", "use_all_heads": false}`; the server
answers, one JSON message each, `{"type": "heads_running", "task_id", "heads", "intent"}`,
`{"type": "head_complete", "task_id", "head_id", "summary", "status", …}` per head as it
finishes, `{"type": "witness_running", "task_id", "heads", "skipped"}` (`skipped`: a
`/head <id>` prompt, whose one head's answer stands without a Witness call), then
`{"type": "complete", …the HTTP reply's fields}` — or `{"type": "error", "message",
"code", "status"}` (a bad prompt or frame, a failed pre- or post-check, a failed run).
The socket stays open for the next prompt; frames sent while a prompt runs wait their
turn. A client that leaves while a prompt runs cancels its run, and with it the heads'
provider calls. An unknown session gets the error and close code 4404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from armillary import (
    END_EVENT_TYPES,
    ArmillaryError,
    ClientDisconnected,
    Conflict,
    Event,
    InvalidRequest,
    Kernel,
    KernelDep,
    NotFound,
    cancel_on_disconnect,
    follow_run,
    to_json,
)
from armillary_dvadasa import pipeline, sessions
from armillary_dvadasa.events import HEAD_COMPLETE, HEADS_RUNNING, WITNESS_RUNNING
from armillary_dvadasa.pipeline import Submitted
from armillary_dvadasa.schemas import (
    FinalResponse,
    HistoryEntry,
    PromptIn,
    SessionDetail,
    SessionOut,
)
from armillary_dvadasa.strategy import DvadasaFailed

NOT_FOUND_CLOSE = 4404
GOING_AWAY = 1001
INVALID_FRAME = {"detail": 'expected a JSON object {"prompt": "…", "use_all_heads": false}',
                 "code": "invalid_message"}

PROMPT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Missing prompt (`missing_prompt`, `prompt_too_long`), an unknown "
                         "head in `/head <id>` (`unknown_head`), the pre-check refused the "
                         "prompt (`pre_check_failed`) or the post-check the answer "
                         "(`post_check_failed`)"},
    404: {"description": "No such session (`session_not_found`)"},
    500: {"description": "Dvādaśa failed: every head failed, or the run did "
                         "(`dvadasa_failed`, with `cause` and `task_id`)"},
    503: {"description": "Not initialised, or no provider enabled "
                         "(`dvadasa_not_initialized`)"},
}


def error_message(exc: ArmillaryError) -> dict[str, Any]:
    return {"type": "error", "message": exc.detail, "code": exc.code,
            "status": exc.status_code, **exc.extra}


def render(event: Event) -> dict[str, Any] | None:
    """A run event in the seed's WebSocket shape (None: not one the seed shows)."""
    p = event.payload
    if event.type == HEADS_RUNNING:
        return {"type": "heads_running", "task_id": event.run_id, "heads": p["heads"],
                "intent": p["intent"]}
    if event.type == HEAD_COMPLETE:
        return {"type": "head_complete", "task_id": event.run_id, **p}
    if event.type == WITNESS_RUNNING:
        return {"type": "witness_running", "task_id": event.run_id, "heads": p["heads"],
                "skipped": p.get("skipped", False)}
    return None


async def wait_for_run(kernel: Kernel, request: Request, submitted: Submitted,
                       timeout: float) -> FinalResponse:
    run_id = submitted.run.id
    try:
        run = await cancel_on_disconnect(request, kernel.runner.wait(run_id, timeout))
    except ClientDisconnected:
        await cancel(kernel, run_id)
        raise
    if not run.status.finished:
        await cancel(kernel, run_id)
        raise DvadasaFailed(f"Dvādaśa failed: no answer within {timeout:g} s",
                            extra={"task_id": run_id, "cause": "timeout"})
    return await pipeline.finish(kernel, submitted, run)


async def cancel(kernel: Kernel, run_id: str) -> None:
    with contextlib.suppress(Conflict, NotFound):
        await kernel.runner.cancel(run_id)


def parse_frame(message: Mapping[str, Any]) -> PromptIn | ArmillaryError:
    """A client frame as the HTTP route's body (same fields, same coercions), or the
    error to send back: not a JSON object (400 `invalid_message`), a field of the wrong
    type (422 `validation_error`, as the HTTP route answers)."""
    text = message.get("text")
    if text is None and message.get("bytes") is not None:
        with contextlib.suppress(UnicodeDecodeError):
            text = message["bytes"].decode()
    try:
        body = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return InvalidRequest(INVALID_FRAME["detail"], code=INVALID_FRAME["code"],
                              status_code=400)
    try:
        return PromptIn.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        return InvalidRequest(problems, code="validation_error", status_code=422)


class Socket:
    """One WebSocket connection: frames read into a queue by a task of their own, so a
    client leaving is seen while a prompt runs."""

    def __init__(self, ws: WebSocket, kernel: Kernel, session_id: str) -> None:
        self.ws, self.kernel, self.session_id = ws, kernel, session_id
        self.inbox: asyncio.Queue[Mapping[str, Any] | None] = asyncio.Queue()
        self.gone = asyncio.Event()

    async def read(self) -> None:
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                await self.inbox.put(message)
        finally:
            self.gone.set()
            self.inbox.put_nowait(None)

    async def send(self, data: dict[str, Any]) -> None:
        await self.ws.send_text(to_json(data))

    async def serve(self) -> None:
        while (message := await self.inbox.get()) is not None:
            frame = parse_frame(message)
            if isinstance(frame, ArmillaryError):
                await self.send(error_message(frame))
                continue
            try:
                submitted = await pipeline.prepare(self.kernel, self.session_id,
                                                   frame.prompt, frame.use_all_heads)
            except ArmillaryError as exc:
                await self.send(error_message(exc))
                continue
            if not await self.follow(submitted):
                return

    async def follow(self, submitted: Submitted) -> bool:
        """Relay the run's events, then its outcome. False: the client left (the run is
        cancelled) or the server is stopping."""
        relay = asyncio.create_task(self._relay(submitted))
        gone = asyncio.create_task(self.gone.wait())
        try:
            await asyncio.wait({relay, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not relay.done():  # the client left mid-run: nobody wants the answer
            await cancel(self.kernel, submitted.run.id)
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await relay
            return False
        return relay.result()

    async def _relay(self, submitted: Submitted) -> bool:
        kernel, run_id = self.kernel, submitted.run.id
        ended = False
        async for batch in follow_run(kernel.store, kernel.bus, run_id,
                                      stop=kernel.stopping):
            for event in batch:
                if event.type in END_EVENT_TYPES:
                    ended = True
                    break
                out = render(event)
                if out is not None:
                    await self.send(out)
        if not ended:  # the server is stopping
            await self.send({"type": "error", "message": "the server is shutting down",
                             "code": "shutting_down", "status": 503, "task_id": run_id})
            return False
        run = await kernel.runner.wait(run_id, timeout=5)
        try:
            reply = await pipeline.finish(kernel, submitted, run)
        except ArmillaryError as exc:
            await self.send(error_message(exc))
            return True
        await self.send({"type": "complete", **reply.model_dump(mode="json")})
        return True


def make_router() -> APIRouter:
    router = APIRouter(tags=["dvadasa"])

    @router.post("/v1/sessions", response_model=SessionOut, responses={
        503: {"description": "Not initialised (`dvadasa_not_initialized`)"}})
    async def create_session(kernel: KernelDep, user_id: Annotated[str | None, Query(
            max_length=200, description="User identifier")] = None) -> SessionOut:
        """Create a session (kept in the run store)."""
        session_id = str(uuid.uuid4())
        await pipeline.state(kernel).sessions.open(session_id,
                                                   metadata={"user_id": user_id})
        return SessionOut(session_id=session_id, user_id=user_id)

    @router.get("/v1/sessions/{session_id}", response_model=SessionDetail, responses={
        404: {"description": "No such session (`session_not_found`)"}})
    async def get_session(session_id: str, kernel: KernelDep) -> SessionDetail:
        """A session and its history (each answered prompt, oldest first)."""
        session = await pipeline.session_or_404(kernel, session_id)
        entries = [HistoryEntry(prompt=user.content, final_answer=answer.content,
                                task_id=answer.data.get("task_id"),
                                confidence_score=answer.data.get("confidence_score"),
                                at=user.at)
                   for user, answer in sessions.exchanges(session)]
        return SessionDetail(session_id=session.id, user_id=session.metadata.get("user_id"),
                             created_at=session.created_at, updated_at=session.updated_at,
                             history=entries)

    @router.post("/v1/sessions/{session_id}/prompt", response_model=FinalResponse,
                 responses=PROMPT_ERRORS)
    async def prompt(session_id: str, request: Request, kernel: KernelDep,
                     body: Annotated[PromptIn | None, Body()] = None) -> FinalResponse:
        """Submit a prompt and wait for the heads and the Witness (the seed's pipeline)."""
        body = body or PromptIn()
        submitted = await pipeline.prepare(kernel, session_id, body.prompt,
                                           body.use_all_heads)
        timeout = pipeline.state(kernel).settings.request_timeout_seconds
        return await wait_for_run(kernel, request, submitted, timeout)

    @router.websocket("/v1/sessions/{session_id}/stream")
    async def stream(ws: WebSocket, session_id: str, kernel: KernelDep) -> None:
        await ws.accept()
        try:
            await pipeline.session_or_404(kernel, session_id)
        except ArmillaryError as exc:
            await ws.send_text(to_json(error_message(exc)))
            await ws.close(code=NOT_FOUND_CLOSE if exc.status_code == 404 else 1011,
                           reason=exc.code)
            return
        socket = Socket(ws, kernel, session_id)
        reader = asyncio.create_task(socket.read())
        try:
            await socket.serve()
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client left while we wrote
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        if not socket.gone.is_set():
            with contextlib.suppress(RuntimeError, OSError):
                await ws.close(code=GOING_AWAY)

    return router

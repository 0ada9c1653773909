"""The Agents SDK session endpoints (seed §20): POST /api/sdk/session/create,
POST /api/sdk/session/message, GET /api/sdk/session/transcript.

A session is a conversation in the kernel's store (`armillary_realtime.sessions`); a
message is a run of the `handoff` strategy (`armillary_realtime.handoff`) for the
session's agents: its own, or a scenario's when the session was created with
`scenario_id` (then handoffs between them are `transfer_to_<agent>` tools). A message
starts with the agent that spoke last (after a handoff, the new agent), unless
`agent.name` says otherwise. Messages to one session are served one at a time (in this
process). A client that leaves cancels the turn (the model stream is closed); what was
done by then stays in the transcript.

With `"stream": true` (or `Accept: text/event-stream`) the message answers SSE:
`start`, `delta` (`{delta, agent}`), `tool_call`, `agent_switch`, then `done` (the same
body as the JSON answer) or `error` (`{detail, code}`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from armillary import (
    EVENT_STREAM,
    HEARTBEAT,
    ArmillaryError,
    ClientDisconnected,
    Conflict,
    Conversations,
    Event,
    Kernel,
    KernelDep,
    NotFound,
    Run,
    WatchedStreamingResponse,
    asks_for,
    cancel_on_disconnect,
    coalesce,
    encode_event,
    follow_run,
    new_id,
    to_json,
)
from armillary_realtime import events, sessions
from armillary_realtime.handoff import NAME as STRATEGY, HandoffPlan, PlannedAgent
from armillary_realtime.responses import SSE_HEADERS
from armillary_realtime.scenarios import get_agent, get_scenario
from armillary_realtime.settings import AgentsSettings

#: the registered agent SDK turns run as: every tool, the handoff strategy (each
#: scenario agent then narrows the tools to its own)
SDK_AGENT = "realtime_sdk"
SESSION_ID = Field(default=None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
AGENT_NAME = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")

_STATUS = {"provider_unavailable": 503, "provider_timeout": 504, "model_not_found": 404,
           "provider_not_found": 404, "agent_not_found": 404, "provider_protocol_error": 502,
           "provider_error": 502, "interrupted": 503, "cancelled": 499}


class CreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str | None = SESSION_ID
    agent_name: str = AGENT_NAME
    instructions: str | None = Field(default=None, max_length=32_000)
    model: str | None = Field(default=None, max_length=200)
    #: the session's agents are this scenario's (agent_name one of them), with handoffs
    scenario_id: str | None = Field(default=None, max_length=200)


class SessionOut(BaseModel):
    session_id: str
    agent_name: str
    model: str | None
    scenario_id: str | None = None


class AgentOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=64,
                             pattern=r"^[A-Za-z0-9_-]+$")
    instructions: str | None = Field(default=None, max_length=32_000)
    model: str | None = Field(default=None, max_length=200)


class MessageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(min_length=1, max_length=200)
    user_input: str
    agent: AgentOverride | None = None
    stream: bool = False


class MessageOut(BaseModel):
    final_output: str
    new_items_len: int
    tool_calls: list[str]
    last_agent: str
    session_id: str


class TranscriptOut(BaseModel):
    session_id: str
    items: list[dict[str, Any]]
    length: int


class SessionLocks:
    """One turn at a time per session (in this process)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def acquire(self, key: str) -> None:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._drop(key)
            raise

    def release(self, key: str) -> None:
        self._locks[key][0].release()
        self._drop(key)

    def _drop(self, key: str) -> None:
        lock, users = self._locks[key]
        if users <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)


def _failure(run: Run, blocked: bool) -> ArmillaryError:
    error = run.error
    code = error.code if error else run.status.value
    detail = error.detail if error else f"the turn ended {run.status.value}"
    return ArmillaryError(detail, code=code, status_code=400 if blocked
                          else _STATUS.get(code, 500), extra={"run_id": run.id})


def make_router(settings: AgentsSettings) -> APIRouter:
    router = APIRouter(tags=["realtime"])
    locks = SessionLocks()

    def store(kernel: Kernel) -> Conversations:
        return sessions.conversations(kernel, settings)

    def plan(spec: sessions.SessionSpec, override: AgentOverride | None, items: list[Any],
             session_id: str) -> HandoffPlan:
        override = override or AgentOverride()
        if spec.scenario_id is not None:
            scenario = get_scenario(settings, spec.scenario_id)
            agents = [PlannedAgent(
                name=a.name, instructions=a.instructions,
                handoff_description=a.handoff_description, handoffs=list(a.handoffs),
                tools=list(a.tools), model=a.model, provider=a.provider)
                for a in scenario.agents]
            if spec.instructions:
                for agent in agents:
                    if agent.name == spec.agent_name:
                        agent.instructions = spec.instructions
            start = override.name or sessions.last_agent(items) or spec.agent_name
            get_agent(scenario, start, scenario_id=spec.scenario_id)
        else:
            start = override.name or spec.agent_name
            agents = [PlannedAgent(name=start, instructions=spec.instructions or "",
                                   tools=settings.sdk_tools)]
        if override.instructions is not None:
            for agent in agents:
                if agent.name == start:
                    agent.instructions = override.instructions
        policy = sessions.policy(settings)
        return HandoffPlan(session_id=session_id, kind=sessions.KIND,
                           policy=policy.model_dump(), agents=agents, start_agent=start,
                           model=override.model or spec.model)

    async def outcome(kernel: Kernel, run: Run) -> MessageOut:
        if run.status.value == "completed":
            turn = await kernel.store.events(run.id, types=[events.TURN])
            if turn:
                return MessageOut(**turn[-1].payload)
        safety = await kernel.store.events(run.id, types=["safety"])
        raise _failure(run, any(e.payload.get("action") == "blocked" for e in safety))

    @router.post("/api/sdk/session/create", response_model=SessionOut, responses={
        404: {"description": "`scenario_not_found`, or `agent_not_found` (agent_name is "
                             "not one of the scenario's agents)"},
        409: {"description": "`session_id` is another principal's session (auth on: "
                             "`session_id_taken`)"}})
    async def create(body: CreateRequest, kernel: KernelDep) -> SessionOut:
        """Create a session, or get the one with this `session_id` (idempotent: an existing
        session keeps what it was created with)."""
        if body.scenario_id is not None:
            get_agent(get_scenario(settings, body.scenario_id), body.agent_name,
                      scenario_id=body.scenario_id)
        session_id = body.session_id or new_id("sess_")
        spec = sessions.SessionSpec(agent_name=body.agent_name, instructions=body.instructions,
                                    model=body.model, scenario_id=body.scenario_id)
        try:
            conversation = await store(kernel).open(session_id, metadata=spec.model_dump())
        except NotFound:  # another principal's session (auth on)
            raise Conflict(f"session id {session_id!r} is taken: choose another, or omit "
                           f"it for a fresh one", code="session_id_taken",
                           extra={"session_id": session_id}) from None
        if "agent_name" not in conversation.metadata:  # a leftover without a spec
            await store(kernel).delete(session_id)
            conversation = await store(kernel).open(session_id, metadata=spec.model_dump())
        spec = sessions.SessionSpec.model_validate(conversation.metadata)
        model = spec.model
        if model is None:
            try:
                model = kernel.provider().default_model
            except ArmillaryError:
                model = None
        return SessionOut(session_id=session_id, agent_name=spec.agent_name, model=model,
                          scenario_id=spec.scenario_id)

    @router.post("/api/sdk/session/message", response_model=MessageOut, responses={
        200: {"content": {EVENT_STREAM: {"schema": {"type": "string"}}},
              "description": "The turn's outcome, or with `stream` (or `Accept: "
                             "text/event-stream`) SSE `start`, `delta`, `tool_call`, "
                             "`agent_switch`, `done` | `error`"},
        400: {"description": "Empty `user_input` (`empty_input`), or a safety check "
                             "blocked the input or the reply (the check's code)"},
        404: {"description": "`session_not_found`, `agent_not_found`, `model_not_found`"},
        422: {"description": "Input longer than `sdk_max_input_chars` (`input_too_long`)"},
        500: {"description": "`max_steps_exceeded`, or another failure with its code"},
        502: {"description": "The model server failed (`provider_error`, …)"},
        503: {"description": "The model server cannot be reached (`provider_unavailable`)"},
        504: {"description": "The model server took too long (`provider_timeout`)"}})
    async def message(body: MessageRequest, request: Request, kernel: KernelDep) -> Response:
        """Run a user turn through the session's agents and tools."""
        if not body.user_input.strip():
            raise ArmillaryError("user_input is empty", code="empty_input", status_code=400)
        if len(body.user_input) > settings.sdk_max_input_chars:
            raise ArmillaryError(f"user_input is longer than {settings.sdk_max_input_chars} "
                                 f"characters", code="input_too_long", status_code=422)
        conversation = await store(kernel).get(body.session_id)
        if conversation is None or "agent_name" not in conversation.metadata:
            # (no spec: it expired during a turn that then wrote to it; create it again)
            raise NotFound(f"no session {body.session_id!r} (create it first)",
                           code="session_not_found", extra={"session_id": body.session_id})
        await cancel_on_disconnect(request, locks.acquire(body.session_id))
        try:
            # re-read under the lock: the previous turn may have changed the last agent
            conversation = await store(kernel).get(body.session_id) or conversation
            spec = sessions.SessionSpec.model_validate(conversation.metadata)
            the_plan = plan(spec, body.agent, conversation.items, body.session_id)
            run = await kernel.runner.submit(Run(
                goal=body.user_input, agent=SDK_AGENT, strategy=STRATEGY,
                max_steps=settings.sdk_max_steps, metadata=the_plan.model_dump()))
        except BaseException:
            locks.release(body.session_id)
            raise
        if body.stream or asks_for(request.headers.get("accept"), EVENT_STREAM):
            return _stream(kernel, run, the_plan, lambda: locks.release(body.session_id))
        try:
            try:
                finished = await cancel_on_disconnect(request, kernel.runner.wait(run.id))
            except ClientDisconnected:
                await _cancel(kernel, run.id)
                raise
        finally:
            locks.release(body.session_id)
        out = await outcome(kernel, finished)
        return Response(out.model_dump_json(), media_type="application/json")

    @router.get("/api/sdk/session/transcript", response_model=TranscriptOut, responses={
        404: {"description": "No such session (`session_not_found`)"}})
    async def transcript(kernel: KernelDep,
                         session_id: str = Query(min_length=1, max_length=200)
                         ) -> TranscriptOut:
        """The session's items, oldest first, as the Agents SDK lists them."""
        conversation = await store(kernel).get(session_id)
        if conversation is None:
            raise NotFound(f"no session {session_id!r}", code="session_not_found",
                           extra={"session_id": session_id})
        items = sessions.transcript_items(conversation.items)
        return TranscriptOut(session_id=session_id, items=items, length=len(items))

    return router


async def _cancel(kernel: Kernel, run_id: str) -> None:
    with contextlib.suppress(ArmillaryError):  # it ended meanwhile
        await kernel.runner.cancel(run_id)


def _sse(event: Event) -> bytes | None:
    payload = event.payload
    if event.type == "token":
        return encode_event("delta", to_json({"delta": payload.get("delta", ""),
                                              "agent": payload.get("agent")}))
    if event.type == "tool_call":
        return encode_event("tool_call", to_json({
            "name": payload.get("tool_name"), "call_id": payload.get("id"),
            "arguments": payload.get("parameters"), "ok": payload.get("success"),
            "result": payload.get("result"), "error": payload.get("error")}))
    if event.type == events.AGENT_SWITCH:
        return encode_event("agent_switch", to_json(payload))
    if event.type == events.TURN:
        return encode_event("done", to_json(payload))
    if event.type in ("failed", "cancelled", "interrupted", "stopped"):
        error = payload.get("error") or {}
        return encode_event("error", to_json({
            "detail": error.get("detail", f"the turn ended {event.type}"),
            "code": error.get("code", event.type)}))
    return None


def _stream(kernel: Kernel, run: Run, plan: HandoffPlan, release: Any) -> Response:
    async def body() -> AsyncIterator[bytes]:
        yield encode_event("start", to_json({"session_id": plan.session_id,
                                             "run_id": run.id, "agent": plan.start_agent}))
        async for batch in follow_run(kernel.store, kernel.bus, run.id,
                                      stop=kernel.stopping):
            if not batch:
                yield HEARTBEAT
                continue
            for event in coalesce(batch):
                data = _sse(event)
                if data is not None:
                    yield data

    async def on_close() -> None:
        try:
            current = await kernel.store.get_run(run.id)
            if current is not None and not current.status.finished:
                await _cancel(kernel, run.id)  # the client left: nobody reads the turn
        finally:
            release()

    return WatchedStreamingResponse(body(), media_type=EVENT_STREAM, on_close=on_close,
                                    headers=SSE_HEADERS)

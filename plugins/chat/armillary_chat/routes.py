"""POST /chat (stream and non-stream), GET and DELETE /chat/{conversation_id}."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from armillary.deps import KernelDep
from armillary.disconnects import ClientDisconnected, cancel_on_disconnect
from armillary.errors import (
    ArmillaryError,
    InvalidRequest,
    ModelNotFound,
    NotFound,
    ProviderError,
    ProviderProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
)
from armillary.kernel import Kernel
from armillary.models import AgentSpec, ChatChunk, ErrorInfo, Event, ToolCall, Usage, new_id
from armillary.models import ChatRequest as ProviderRequest
from armillary.providers import Provider
from armillary_chat.memory import ConversationMemory, Exchange
from armillary_chat.prompt import build_messages
from armillary_chat.schemas import ChatRequest, ChatResponse, ConversationOut, ExchangeOut
from armillary_chat.settings import ChatSettings
from armillary_chat.streaming import (
    EVENT_STREAM,
    PLAIN_TEXT,
    ChatStreamResponse,
    plain_error_marker,
    plain_tool_calls_marker,
    sse,
    wants_sse,
)

log = logging.getLogger("armillary.chat")

CONVERSATION_HEADER = "X-Conversation-Id"
#: bus topic every finished chat turn is published on (the agents plugin counts them)
ACTIVITY_TOPIC = "agent-activity"
ACTIVITY_EVENT = "agent.activity"

_PROVIDER_ERRORS: dict[str, type[ProviderError]] = {
    cls.code: cls for cls in (ProviderUnavailable, ProviderTimeout, ModelNotFound,
                              ProviderProtocolError)
}
#: fields of the agent's `options` that are ChatRequest fields, not provider knobs
_REQUEST_FIELDS = ("temperature", "max_tokens", "stop", "seed")


def provider_error(info: ErrorInfo) -> ProviderError:
    """The `ProviderError` (with its HTTP status) for an error chunk."""
    cls = _PROVIDER_ERRORS.get(info.code, ProviderError)
    return cls(info.detail, code=info.code)


def _blocked(stage: str, reason: str | None, code: str | None) -> ArmillaryError:
    return ArmillaryError(reason or f"the {stage} was blocked by a safety check",
                          code=code or f"{stage}_blocked", status_code=400)


@dataclass
class Turn:
    """One chat turn being served: what was asked, of whom, and what came back so far."""

    kernel: Kernel
    memory: ConversationMemory | None
    conversation_id: str
    agent: AgentSpec
    provider: Provider
    message: str
    request: ProviderRequest
    started: float = field(default_factory=time.perf_counter)
    parts: list[str] = field(default_factory=list)
    model: str | None = None
    usage: Usage | None = None
    completed: bool = False
    error: ErrorInfo | None = None
    blocked: bool = False
    redacted: str | None = None
    #: the client went away before the reply was complete (not an agent error)
    disconnected: bool = False
    #: calls the model asked for anyway; /chat sends no tools and runs none
    tool_calls: list[ToolCall] = field(default_factory=list)

    @property
    def reply(self) -> str:
        return self.redacted if self.redacted is not None else "".join(self.parts)

    def response(self) -> ChatResponse:
        return ChatResponse(conversation_id=self.conversation_id, agent=self.agent.name,
                            reply=self.reply, model=self.model, usage=self.usage,
                            tool_calls=list(self.tool_calls) or None)

    def response_body(self) -> dict[str, Any]:
        """The reply as JSON; `tool_calls` only when the model asked for some."""
        return self.response().model_dump(
            mode="json", exclude=None if self.tool_calls else {"tool_calls"})

    async def check_output(self) -> None:
        verdict = await self.kernel.safety.run(
            "output", "".join(self.parts),
            {"agent": self.agent.name, "conversation_id": self.conversation_id})
        if not verdict.allowed:
            self.blocked = True
            raise _blocked("output", verdict.reason, verdict.code)
        self.redacted = verdict.redacted

    async def finish(self) -> None:
        """Remember the exchange (partial when cut short) and report the activity.

        Nothing is remembered when no reply text was produced (a client that left before
        the first token, a provider that failed before it): there is no exchange."""
        reply = self.reply
        if self.memory is not None and not self.blocked and (self.completed or reply):
            await self.memory.append(self.conversation_id, Exchange(
                user=self.message, assistant=reply, partial=not self.completed,
                agent=self.agent.name))
        await self.publish()

    async def publish(self, code: str | None = None) -> None:
        if self.disconnected:
            code = ClientDisconnected.code
        payload: dict[str, Any] = {
            "agent": self.agent.name, "source": "chat", "ok": self.completed,
            "partial": not self.completed and (bool(self.parts) or self.disconnected),
            "disconnected": self.disconnected,
            "code": code or (self.error.code if self.error else None),
            "duration_s": time.perf_counter() - self.started,
        }
        try:
            await self.kernel.bus.publish(ACTIVITY_TOPIC, Event(
                id=new_id("evt_"), run_id=self.conversation_id, seq=0, type=ACTIVITY_EVENT,
                payload=payload))
        except Exception:  # counters are best effort; the reply is what matters
            log.debug("publishing chat activity failed", exc_info=True)


def _provider_request(agent: AgentSpec, messages: list[Any]) -> ProviderRequest:
    options = dict(agent.options)
    fields = {k: options.pop(k) for k in _REQUEST_FIELDS if k in options}
    return ProviderRequest(messages=messages, model=agent.model, options=options, **fields)


def make_router(settings: ChatSettings) -> APIRouter:
    """The chat routes, with a conversation memory of their own (one per app)."""
    memory = ConversationMemory(
        ttl_seconds=settings.memory_ttl_seconds, max_turns=settings.memory_max_turns,
        max_conversations=settings.memory_max_conversations) if settings.memory_enabled else None
    router = APIRouter(tags=["chat"])

    async def begin(body: ChatRequest, kernel: Kernel) -> Turn:
        if len(body.message) > settings.max_message_chars:
            raise InvalidRequest(f"message is longer than {settings.max_message_chars} "
                                 f"characters", code="message_too_long")
        agent = kernel.agent(body.agent or settings.default_agent)
        provider = kernel.provider(agent.provider)
        conversation_id = body.conversation_id or new_id()
        verdict = await kernel.safety.run(
            "input", body.message, {"agent": agent.name, "conversation_id": conversation_id})
        if not verdict.allowed:
            raise _blocked("input", verdict.reason, verdict.code)
        message = verdict.redacted if verdict.redacted is not None else body.message
        history = await memory.history(conversation_id) if memory is not None else []
        messages = build_messages(agent.system_prompt(), history, message)
        return Turn(kernel=kernel, memory=memory, conversation_id=conversation_id, agent=agent,
                    provider=provider, message=message,
                    request=_provider_request(agent, messages))

    @router.post("/chat", response_model=ChatResponse, responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}},
                          EVENT_STREAM: {"schema": {"type": "string"}}},
              "description": "The reply: a `ChatResponse`, or with `stream` true the reply "
                             "as it is generated, plain text or (`Accept: "
                             "text/event-stream`) SSE events `start`, `delta`, `done`, "
                             "`error`"},
        400: {"description": "A safety check blocked the message or the reply "
                             "(`input_blocked`, `output_blocked`, or the check's own code)"},
        404: {"description": "`agent_not_found`, `provider_not_found` (the agent's "
                             "provider is not registered) or `model_not_found`"},
        422: {"description": "Invalid body (`validation_error`, with `errors`), or a "
                             "message longer than `max_message_chars` (`message_too_long`)"},
        502: {"description": "The model server answered an error (`provider_error`) or "
                             "something malformed (`provider_protocol_error`)"},
        503: {"description": "The model server cannot be reached (`provider_unavailable`)"},
        504: {"description": "The model server took too long (`provider_timeout`)"},
    })
    async def chat(body: ChatRequest, request: Request, kernel: KernelDep) -> Response:
        """Talk to an agent. Non-stream: a `ChatResponse`. Stream: the reply as it is
        generated, as plain text chunks, or as SSE (`start`, `delta`, `done`, `error`
        events) when the client sends `Accept: text/event-stream`."""
        turn = await begin(body, kernel)
        if body.stream:
            return await _stream(turn, request,
                                 sse_wanted=wants_sse(request.headers.get("accept")))
        try:
            # a client that hangs up cancels the provider call: nobody would read the reply
            result = await cancel_on_disconnect(request, turn.provider.chat(turn.request))
        except ClientDisconnected:
            turn.disconnected = True
            await turn.finish()  # nothing was produced for the client: nothing remembered
            raise
        except ProviderError as exc:
            await turn.publish(exc.code)
            raise
        turn.parts.append(result.message.content)
        turn.tool_calls = list(result.message.tool_calls or [])
        turn.model, turn.usage = result.model, result.usage
        try:
            await turn.check_output()
        except ArmillaryError as exc:
            await turn.publish(exc.code)
            raise
        turn.completed = True
        await turn.finish()
        return JSONResponse(turn.response_body(),
                            headers={CONVERSATION_HEADER: turn.conversation_id})

    @router.get("/chat/{conversation_id}", response_model=ConversationOut, responses={
        404: {"description": "Unknown or expired conversation, or memory is disabled "
                             "(`conversation_not_found`)"}})
    async def conversation(conversation_id: str) -> ConversationOut:
        """The remembered exchanges of a conversation, oldest first; `partial` marks a reply
        cut short by a disconnect or a provider failure."""
        if memory is None or not await memory.exists(conversation_id):
            raise NotFound(f"no conversation {conversation_id!r} (unknown, expired or "
                           f"memory is disabled)", code="conversation_not_found")
        turns = await memory.history(conversation_id)
        return ConversationOut(conversation_id=conversation_id, turns=[
            ExchangeOut(user=t.user, assistant=t.assistant, partial=t.partial, agent=t.agent,
                        at=t.at) for t in turns])

    @router.delete("/chat/{conversation_id}", status_code=204, responses={
        204: {"description": "Forgotten"},
        404: {"description": "No such conversation (`conversation_not_found`)"}})
    async def forget(conversation_id: str) -> Response:
        """Forget a conversation."""
        if memory is None or not await memory.forget(conversation_id):
            raise NotFound(f"no conversation {conversation_id!r}", code="conversation_not_found")
        return Response(status_code=204)

    return router


async def _first_chunk(chunks: AsyncIterator[ChatChunk]) -> ChatChunk:
    return await anext(chunks, ChatChunk(done=True))


async def _stream(turn: Turn, request: Request, *, sse_wanted: bool) -> Response:
    chunks = aiter(turn.provider.stream(turn.request))
    # the first chunk is awaited before answering, so a provider that is down (or a model
    # that does not exist) gets its proper status and error body, not a 200 that fails;
    # a client that leaves meanwhile (a slow model load) cancels the wait at once
    try:
        first = await cancel_on_disconnect(request, _first_chunk(chunks))
    except ClientDisconnected:
        await _close_quietly(turn, chunks)
        turn.disconnected = True
        await turn.finish()  # no token was produced: nothing remembered, not an error
        raise
    except ProviderError as exc:
        await turn.publish(exc.code)
        raise
    if first.error is not None:
        await chunks.aclose()  # type: ignore[attr-defined]
        turn.error = first.error
        await turn.publish()
        raise provider_error(first.error)
    turn.model = first.model or turn.request.model or turn.provider.default_model or None
    headers = {CONVERSATION_HEADER: turn.conversation_id, "Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}
    return ChatStreamResponse(_render(turn, first, chunks, sse_wanted),
                              on_close=_closer(turn, chunks),
                              media_type=EVENT_STREAM if sse_wanted else PLAIN_TEXT,
                              headers=headers)


async def _close_quietly(turn: Turn, chunks: AsyncIterator[ChatChunk]) -> None:
    try:
        await chunks.aclose()  # type: ignore[attr-defined]
    except Exception:
        log.debug("closing the %s stream failed", turn.provider.name, exc_info=True)


def _closer(turn: Turn, chunks: AsyncIterator[ChatChunk]) -> Any:
    async def close() -> None:
        await _close_quietly(turn, chunks)
        # neither finished nor failed: the stream was cut short by the client leaving
        if not turn.completed and turn.error is None:
            turn.disconnected = True
        await turn.finish()

    return close


async def _render(turn: Turn, first: ChatChunk, chunks: AsyncIterator[ChatChunk],
                  sse_wanted: bool) -> AsyncIterator[str]:
    """Provider chunks → wire format, recording the reply on `turn` as it goes."""
    if sse_wanted:
        yield sse("start", {"conversation_id": turn.conversation_id, "agent": turn.agent.name,
                            "model": turn.model})
    chunk: ChatChunk | None = first
    while chunk is not None:
        if chunk.error is not None:
            turn.error = chunk.error
            break
        if chunk.model:
            turn.model = chunk.model
        if chunk.usage is not None:
            turn.usage = chunk.usage
        if chunk.tool_calls:
            turn.tool_calls.extend(chunk.tool_calls)
        if chunk.delta:
            turn.parts.append(chunk.delta)
            yield sse("delta", {"delta": chunk.delta}) if sse_wanted else chunk.delta
        if chunk.done:
            break
        try:
            chunk = await anext(chunks, None)
        except ArmillaryError as exc:  # the contract says an error chunk; be lenient
            chunk = ChatChunk(done=True, error=ErrorInfo(detail=exc.detail, code=exc.code))
        except Exception as exc:
            log.exception("provider %s failed mid-stream", turn.provider.name)
            chunk = ChatChunk(done=True, error=ErrorInfo(
                detail=f"the provider failed: {type(exc).__name__}", code="provider_error"))
    if turn.error is None:
        try:
            await turn.check_output()
        except ArmillaryError as exc:
            turn.error = ErrorInfo(detail=exc.detail, code=exc.code)
    if turn.error is not None:
        err = turn.error
        yield sse("error", err.model_dump()) if sse_wanted else plain_error_marker(
            err.code, err.detail)
        return
    turn.completed = True
    if sse_wanted:
        yield sse("done", turn.response_body())
    elif turn.tool_calls:
        yield plain_tool_calls_marker([call.name for call in turn.tool_calls])

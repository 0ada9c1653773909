"""POST /chat (stream and non-stream), GET and DELETE /chat/{conversation_id}.

One turn: the message goes through the guard's input stage (a block is a 400 before
anything else happens); the turn waits for its conversation's lock (`TurnLocks`), reads
the history from the store, and calls the model through the guard, whose output stage
checks the whole reply (non-stream) or the stream with its hold-back window, so only
guarded text reaches the client and memory. The exchange is remembered (partial when cut
short, nothing when blocked or when no text was produced), one `chat.turn` event is
published on the firehose, and the lock is released.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from armillary import (
    EVENT_STREAM,
    FIREHOSE,
    SAFETY_FINISH,
    AgentSpec,
    ArmillaryError,
    ChatChunk,
    ChatRequest as ProviderRequest,
    ClientDisconnected,
    ErrorInfo,
    Event,
    InvalidRequest,
    Kernel,
    KernelDep,
    ModelNotFound,
    NotFound,
    Provider,
    ProviderError,
    ProviderProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    SafetyBlocked,
    ToolCall,
    Usage,
    WatchedStreamingResponse,
    asks_for,
    cancel_on_disconnect,
    close_stream,
    encode_event,
    iso,
    new_id,
    to_json,
)
from armillary_chat.events import TURN_EVENT, ChatTurn
from armillary_chat.locks import TurnLocks
from armillary_chat.memory import KIND, ChatMemory, Exchange, policy
from armillary_chat.prompt import build_messages
from armillary_chat.schemas import ChatRequest, ChatResponse, ConversationOut, ExchangeOut
from armillary_chat.settings import ChatSettings

log = logging.getLogger("armillary.chat")

CONVERSATION_HEADER = "X-Conversation-Id"
PLAIN_TEXT = "text/plain; charset=utf-8"

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


def plain_error_marker(code: str, detail: str) -> str:
    """How a plain-text stream ends when it fails: a line of its own, easy to spot."""
    return f"\n[error: {code}] {detail}\n"


def plain_tool_calls_marker(names: list[str]) -> str:
    """How a plain-text stream ends when the model asked for tools, which /chat does not
    run: a line of its own, so the reply is never silently empty."""
    return f"\n[tool_calls: {', '.join(names)}] the model asked for tools; /chat runs none\n"


def sse(event: str, data: dict[str, Any]) -> bytes:
    return encode_event(event, to_json(data))


@dataclass
class Turn:
    """One chat turn being served: what was asked, of whom, and what came back so far.
    `end()` closes it exactly once, on every path."""

    kernel: Kernel
    memory: ChatMemory | None
    conversation_id: str
    agent: AgentSpec
    #: the guarded provider
    provider: Provider
    #: the user's message as the input stage let it through
    message: str
    request: ProviderRequest | None = None
    #: the conversation's item count when the turn began (see `armillary_chat.memory`)
    items: int = 0
    #: releases the conversation's turn lock (None: not held)
    release: Callable[[], None] | None = None
    started: float = field(default_factory=time.perf_counter)
    parts: list[str] = field(default_factory=list)
    model: str | None = None
    usage: Usage | None = None
    completed: bool = False
    error: ErrorInfo | None = None
    #: a safety check refused the reply: nothing of it is remembered
    blocked: bool = False
    #: the client went away before the reply was complete (not an agent error)
    disconnected: bool = False
    #: calls the model asked for anyway; /chat sends no tools and runs none
    tool_calls: list[ToolCall] = field(default_factory=list)
    _ending: asyncio.Future[None] | None = field(default=None, init=False, repr=False)

    @property
    def reply(self) -> str:
        return "".join(self.parts)

    def response(self) -> ChatResponse:
        return ChatResponse(conversation_id=self.conversation_id, agent=self.agent.name,
                            reply=self.reply, model=self.model, usage=self.usage,
                            tool_calls=list(self.tool_calls) or None)

    def response_body(self) -> dict[str, Any]:
        """The reply as JSON; `tool_calls` only when the model asked for some."""
        return self.response().model_dump(
            mode="json", exclude=None if self.tool_calls else {"tool_calls"})

    def note(self, exc: BaseException) -> None:
        """Record why the turn stops: the client left, or an error (a safety block marks
        the reply blocked). A cancellation (the server stopping) is neither."""
        if isinstance(exc, ClientDisconnected):
            self.disconnected = True
        elif isinstance(exc, ArmillaryError):
            self.error = ErrorInfo(detail=exc.detail, code=exc.code)
            self.blocked = isinstance(exc, SafetyBlocked)
        elif isinstance(exc, Exception):
            self.error = ErrorInfo(detail=type(exc).__name__, code="internal_error")

    async def end(self) -> None:
        """Remember the exchange (partial when cut short), publish `chat.turn`, release
        the conversation. Nothing is remembered when the reply was blocked or no reply
        text was produced (a client that left before the first token, a provider that
        failed before it): there is no exchange.

        Runs once, whoever calls first, and runs to the end even if that caller is
        cancelled (a client leaving just then): a later call awaits the same work."""
        if self._ending is None:
            self._ending = asyncio.ensure_future(self._end())
        await asyncio.shield(self._ending)

    async def _end(self) -> None:
        try:
            seq = self.items
            reply = self.reply
            if self.memory is not None and not self.blocked and (self.completed or reply):
                seq = await self.memory.remember(self.conversation_id, Exchange(
                    user=self.message, assistant=reply, partial=not self.completed,
                    agent=self.agent.name), after=self.items)
            await self.publish(seq)
        finally:
            if self.release is not None:
                self.release()

    async def publish(self, seq: int) -> None:
        code = ClientDisconnected.code if self.disconnected else (
            self.error.code if self.error else None)
        payload = ChatTurn(
            agent=self.agent.name, ok=self.completed,
            partial=not self.completed and not self.blocked
            and (bool(self.parts) or self.disconnected),
            disconnected=self.disconnected, code=code,
            duration_s=time.perf_counter() - self.started)
        try:
            await self.kernel.bus.publish(FIREHOSE, Event(
                id=new_id("evt_"), run_id=self.conversation_id, seq=seq, type=TURN_EVENT,
                payload=payload.model_dump()))
        except Exception:  # counters are best effort; the reply is what matters
            log.debug("publishing %s failed", TURN_EVENT, exc_info=True)


def _provider_request(agent: AgentSpec, messages: list[Any]) -> ProviderRequest:
    options = dict(agent.options)
    fields = {k: options.pop(k) for k in _REQUEST_FIELDS if k in options}
    return ProviderRequest(messages=messages, model=agent.model, options=options, **fields)


def make_router(settings: ChatSettings) -> APIRouter:
    """The chat routes; conversations live in the kernel's store (kind "chat") when
    memory is enabled, and turns in one conversation are served one at a time."""
    chat_policy = policy(ttl_seconds=settings.memory_ttl_seconds,
                         max_turns=settings.memory_max_turns,
                         max_conversations=settings.memory_max_conversations)
    locks = TurnLocks()
    router = APIRouter(tags=["chat"])

    def memory_of(kernel: Kernel) -> ChatMemory | None:
        if not settings.memory_enabled:
            return None
        return ChatMemory(kernel.conversations(KIND, chat_policy))

    async def begin(body: ChatRequest, request: Request, kernel: Kernel) -> Turn:
        if len(body.message) > settings.max_message_chars:
            raise InvalidRequest(f"message is longer than {settings.max_message_chars} "
                                 f"characters", code="message_too_long")
        agent = kernel.agent(body.agent or settings.default_agent)
        conversation_id = body.conversation_id or new_id()
        guard = kernel.guard(conversation_id=conversation_id, agent=agent.name)
        provider = guard.provider(kernel.provider(agent.provider))
        # checked here (the guard remembers it, so the provider call does not check it
        # again): a refused message is a 400 before any waiting, and the conversation
        # remembers the message as the checks let it through
        message = await guard.check_input(body.message)
        memory = memory_of(kernel)
        turn = Turn(kernel=kernel, memory=memory, conversation_id=conversation_id,
                    agent=agent, provider=provider, message=message)
        history: list[Exchange] = []
        if memory is not None:
            try:
                # another key's conversation does not exist for this one (404 up front,
                # not a late failure when the reply is remembered)
                await memory.conversations.check_access(conversation_id)
                # a client that leaves while an earlier turn is still being served
                # stops waiting at once
                turn.release = await cancel_on_disconnect(request,
                                                          locks.acquire(conversation_id))
                recalled = await memory.recall(conversation_id)
            except BaseException as exc:
                turn.note(exc)
                await turn.end()
                raise
            if recalled is not None:
                history, turn.items = recalled.exchanges, recalled.items
        turn.request = _provider_request(
            agent, build_messages(agent.system_prompt(), history, message))
        return turn

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
        turn = await begin(body, request, kernel)
        if body.stream:
            return await _stream(turn, request,
                                 sse_wanted=asks_for(request.headers.get("accept"),
                                                     EVENT_STREAM))
        assert turn.request is not None
        try:
            try:
                # a client that hangs up cancels the provider call: nobody would read it
                # (and nothing reached it, so nothing is remembered)
                result = await cancel_on_disconnect(request,
                                                    turn.provider.chat(turn.request))
            except BaseException as exc:
                turn.note(exc)
                raise
            turn.parts.append(result.message.content)
            turn.tool_calls = list(result.message.tool_calls or [])
            turn.model, turn.usage = result.model, result.usage
            turn.completed = True
        finally:
            await turn.end()
        return JSONResponse(turn.response_body(),
                            headers={CONVERSATION_HEADER: turn.conversation_id})

    @router.get("/chat/{conversation_id}", response_model=ConversationOut, responses={
        404: {"description": "Unknown or expired conversation, or memory is disabled "
                             "(`conversation_not_found`)"}})
    async def conversation(conversation_id: str, kernel: KernelDep) -> ConversationOut:
        """The remembered exchanges of a conversation, oldest first; `partial` marks a reply
        cut short by a disconnect or a provider failure."""
        memory = memory_of(kernel)
        recalled = await memory.recall(conversation_id) if memory is not None else None
        if recalled is None:
            raise NotFound(f"no conversation {conversation_id!r} (unknown, expired or "
                           f"memory is disabled)", code="conversation_not_found")
        return ConversationOut(conversation_id=conversation_id, turns=[
            ExchangeOut(user=t.user, assistant=t.assistant, partial=t.partial, agent=t.agent,
                        at=iso(t.at)) for t in recalled.exchanges])

    @router.delete("/chat/{conversation_id}", status_code=204, responses={
        204: {"description": "Forgotten"},
        404: {"description": "No such conversation (`conversation_not_found`)"}})
    async def forget(conversation_id: str, kernel: KernelDep) -> Response:
        """Forget a conversation."""
        memory = memory_of(kernel)
        if memory is None or not await memory.forget(conversation_id):
            raise NotFound(f"no conversation {conversation_id!r}", code="conversation_not_found")
        return Response(status_code=204)

    return router


async def _first_chunk(chunks: AsyncIterator[ChatChunk]) -> ChatChunk:
    return await anext(chunks, ChatChunk(done=True))


async def _close_quietly(turn: Turn, chunks: AsyncIterator[ChatChunk]) -> None:
    try:
        await close_stream(chunks)
    except Exception:
        log.debug("closing the %s stream failed", turn.provider.name, exc_info=True)


def _chunk_error(turn: Turn, chunk: ChatChunk) -> None:
    assert chunk.error is not None
    turn.error = chunk.error
    # the guard ends a stream it blocks with an error chunk of its own
    turn.blocked = chunk.finish_reason == SAFETY_FINISH


async def _stream(turn: Turn, request: Request, *, sse_wanted: bool) -> Response:
    assert turn.request is not None
    chunks = aiter(turn.provider.stream(turn.request))
    # the first chunk is awaited before answering, so a provider that is down (or a model
    # that does not exist, or a reply blocked before any of it could be sent) gets its
    # proper status and error body, not a 200 that fails; a client that leaves meanwhile
    # (a slow model load) cancels the wait at once
    try:
        first = await cancel_on_disconnect(request, _first_chunk(chunks))
        if first.error is not None:
            _chunk_error(turn, first)
            if turn.blocked:
                raise SafetyBlocked(first.error.detail, code=first.error.code,
                                    extra={"stage": "output"})
            raise provider_error(first.error)
    except BaseException as exc:
        if turn.error is None:
            turn.note(exc)  # a client gone before the first token: nothing remembered
        await _close_quietly(turn, chunks)
        await turn.end()
        raise
    turn.model = first.model or turn.request.model or turn.provider.default_model or None
    headers = {CONVERSATION_HEADER: turn.conversation_id, "Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}
    return WatchedStreamingResponse(_render(turn, first, chunks, sse_wanted),
                                    on_close=_closer(turn, chunks),
                                    media_type=EVENT_STREAM if sse_wanted else PLAIN_TEXT,
                                    headers=headers)


def _closer(turn: Turn, chunks: AsyncIterator[ChatChunk]) -> Callable[[], Any]:
    async def close() -> None:
        await _close_quietly(turn, chunks)
        # neither finished nor failed: the stream was cut short by the client leaving
        if not turn.completed and turn.error is None:
            turn.disconnected = True
        await turn.end()

    return close


async def _render(turn: Turn, first: ChatChunk, chunks: AsyncIterator[ChatChunk],
                  sse_wanted: bool) -> AsyncIterator[str | bytes]:
    """Guarded chunks → wire format, recording the reply on `turn` as it goes."""
    if sse_wanted:
        yield sse("start", {"conversation_id": turn.conversation_id, "agent": turn.agent.name,
                            "model": turn.model})
    chunk: ChatChunk | None = first
    while chunk is not None:
        if chunk.error is not None:
            _chunk_error(turn, chunk)
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
    turn.completed = turn.error is None
    # remembered and counted before the last bytes go out, so a client that reads the
    # conversation (or /agents) as soon as its stream ended finds this turn there
    await turn.end()
    if turn.error is not None:
        err = turn.error
        yield sse("error", err.model_dump()) if sse_wanted else plain_error_marker(
            err.code, err.detail)
        return
    if sse_wanted:
        yield sse("done", turn.response_body())
    elif turn.tool_calls:
        yield plain_tool_calls_marker([call.name for call in turn.tool_calls])

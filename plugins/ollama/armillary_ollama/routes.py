"""The multi-agent seed's Ollama routes: `POST /ollama/chat` and `GET /ollama/models`.

`POST /ollama/chat` takes the seed's `OllamaChatRequest` and answers one JSON object, or,
when the body says `"stream": true` or the client accepts only `application/x-ndjson`,
an NDJSON stream shaped like Ollama's own chat stream. Failures before the first token
are HTTP errors with the kernel's `{"detail", "code"}` body; a failure mid-stream is a
last line `{"error": ..., "code": ..., "done": true}`.

The model is called only through the kernel's guard: the message goes through the
`input` stage (redacted, or refused with a 400 before Ollama is asked), the reply through
`output` — whole, or streamed with the guard's hold-back window, so only checked text is
ever written to a line, and a block mid-stream is the error line with the check's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from armillary import (
    JSON,
    NDJSON,
    SAFETY_FINISH,
    ChatChunk,
    ChatRequest,
    ErrorInfo,
    KernelDep,
    Message,
    ModelNotFound,
    Provider,
    ProviderError,
    ProviderProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    Role,
    SafetyBlocked,
    ToolCall,
    UnknownProvider,
    Usage,
    WatchedStreamingResponse,
    asks_for,
    cancel_on_disconnect,
    close_stream,
    preferred,
)
from armillary_ollama.readahead import ReadAhead

log = logging.getLogger("armillary.ollama")

_PROVIDER_ERRORS: dict[str, type[ProviderError]] = {
    cls.code: cls for cls in (ProviderUnavailable, ProviderTimeout, ModelNotFound,
                              ProviderProtocolError)
}

_ROLES: dict[str, Role] = {"system": "system", "user": "user", "human": "user",
                           "assistant": "assistant", "agent": "assistant", "ai": "assistant",
                           "bot": "assistant", "model": "assistant", "tool": "tool"}


class HistoryItem(BaseModel):
    """One `conversation_history` entry: `{role, content}`, optionally `name` (a tool
    result's tool). `sender`/`message`/`tool_name` are accepted for `role`/`content`/
    `name`; `content: null` is empty text; other keys are ignored."""

    model_config = ConfigDict(strict=True)

    role: str | None = Field(None, description="system, user, assistant or tool "
                             "(also human, agent, ai, bot, model)")
    content: str | None = None
    name: str | None = None
    sender: str | None = None
    message: str | None = None
    tool_name: str | None = None

    @field_validator("role", "sender")
    @classmethod
    def _known_role(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in _ROLES:
            raise ValueError(f"must be one of system, user, assistant, tool (got {value!r})")
        return value

    def to_message(self) -> Message:
        role = _ROLES[(self.role or self.sender or "user").lower()]
        content = self.content if self.content is not None else self.message
        return Message(role=role, content=content or "", name=self.tool_name or self.name)


class OllamaChatRequest(BaseModel):
    """The seed's request model, plus `stream` and an optional provider instance."""

    # strict, like the task API: `"stream": "yes"` or `"max_tokens": "9"` are mistakes
    model_config = ConfigDict(strict=True)

    model: str = Field(..., description="Ollama model name")
    message: str = Field(..., description="User message")
    agent_id: str | None = Field(None, description="Associated agent ID")
    conversation_history: list[HistoryItem] | None = Field(
        None, description="Recent conversation history: [{role, content}, ...]")
    temperature: float | None = Field(0.7, description="Response temperature", ge=0.0,
                                      le=2.0)
    max_tokens: int | None = Field(2048, description="Maximum response tokens", ge=1,
                                   le=8192)
    stream: bool = Field(False, description="Answer an NDJSON stream of tokens")
    provider: str | None = Field(None, description="Ollama instance (default: the "
                                 "plugin's default instance)")


def chat_request(body: OllamaChatRequest) -> ChatRequest:
    return ChatRequest(
        messages=[*(m.to_message() for m in body.conversation_history or ()),
                  Message(role="user", content=body.message)],
        model=body.model, temperature=body.temperature, max_tokens=body.max_tokens)


def wants_stream(body: OllamaChatRequest, accept: str | None) -> bool:
    """`"stream": true`, or an `Accept` that names NDJSON and prefers it to JSON (the
    client accepts only the stream)."""
    return body.stream or (asks_for(accept, NDJSON)
                           and preferred(accept, [JSON, NDJSON]) == NDJSON)


def _now() -> str:
    """A timestamp as Ollama writes `created_at` (RFC 3339, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ollama_tool_calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
    """Tool calls in Ollama's shape: `{"id", "function": {"name", "arguments"}}`."""
    return [{"id": c.id, "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls]


def _done_fields(finish_reason: str | None, usage: Usage | None,
                 started: float) -> dict[str, Any]:
    """The fields of Ollama's last line: `done_reason`, `done`, `total_duration` (ns) and,
    when the provider reported them, the token counts."""
    fields: dict[str, Any] = {
        # Ollama says "stop" for a reply that calls tools; the kernel says "tool_calls"
        "done_reason": "stop" if finish_reason == "tool_calls" else finish_reason,
        "done": True,
        "total_duration": max(1, int((time.perf_counter() - started) * 1e9)),
    }
    if usage is not None and usage.prompt_tokens is not None:
        fields["prompt_eval_count"] = usage.prompt_tokens
    if usage is not None and usage.completion_tokens is not None:
        fields["eval_count"] = usage.completion_tokens
    return fields


BLOCKED: dict[int | str, dict[str, Any]] = {400: {
    "description": "A safety check refused the message or the reply before any of it was "
                   "sent (`input_blocked`, `output_blocked`, or the check's own code; "
                   "`stage` says which)"}}
PROVIDER_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No Ollama instance of that name (`provider_not_found`), or no "
                         "such model on it (`model_not_found`)"},
    502: {"description": "Ollama answered an error (`provider_error`) or something "
                         "malformed (`provider_protocol_error`)"},
    503: {"description": "Ollama cannot be reached (`provider_unavailable`)"},
    504: {"description": "Ollama took too long (`provider_timeout`)"},
}


def build_router(instances: list[str], default: str) -> APIRouter:
    router = APIRouter(tags=["ollama"])

    def pick(kernel: Any, name: str | None) -> Provider:
        name = name or default
        if name not in instances:
            raise UnknownProvider(f"no Ollama instance named {name!r} "
                                  f"(have: {', '.join(instances)})")
        provider: Provider = kernel.provider(name)
        return provider

    @router.post("/ollama/chat", response_model=None, responses={
        200: {"content": {"application/json": {"schema": {"type": "object"}},
                          NDJSON: {"schema": {"type": "string"}}},
              "description": "One JSON object shaped like Ollama's `/api/chat` reply, or "
                             "(`stream` true, or `Accept: application/x-ndjson` only) an "
                             "NDJSON stream shaped like Ollama's; a failure mid-stream is "
                             'a last line `{"error", "code", "done": true}`'},
        **BLOCKED, **PROVIDER_ERRORS})
    async def ollama_chat(body: OllamaChatRequest, request: Request,
                          kernel: KernelDep) -> dict[str, Any] | WatchedStreamingResponse:
        """Chat with an Ollama model (the seed's `chat_with_streaming`)."""
        chosen = pick(kernel, body.provider)
        guard = kernel.guard(agent=body.agent_id, provider=chosen.name, model=body.model)
        started = time.perf_counter()
        if wants_stream(body, request.headers.get("accept")):
            # with output checks on, lines carry the text the guard releases, not tokens:
            # read ahead under it, so a fast stream is checked a batch at a time
            under = ReadAhead(chosen) if guard.output().active else chosen
            return await _stream(request, guard.provider(under), body, started)
        provider = guard.provider(chosen)
        # a client that hangs up cancels the generation (closing the upstream connection)
        reply = await cancel_on_disconnect(request, provider.chat(chat_request(body)))
        message: dict[str, Any] = {"role": "assistant", "content": reply.message.content}
        if reply.message.tool_calls:
            message["tool_calls"] = _ollama_tool_calls(reply.message.tool_calls)
        return {
            "model": reply.model, "created_at": _now(), "message": message,
            **_done_fields(reply.finish_reason, reply.usage, started),
            "response": reply.message.content, "agent_id": body.agent_id,
            "provider": provider.name,
            "usage": reply.usage.model_dump() if reply.usage else None,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        }

    @router.get("/ollama/models", responses=PROVIDER_ERRORS)
    async def ollama_models(kernel: KernelDep, provider: str | None = None) -> dict[str, Any]:
        """Models available on the Ollama host (`/api/tags`)."""
        chosen = pick(kernel, provider)
        models = await chosen.models()
        return {"models": [m.model_dump() for m in models], "provider": chosen.name,
                "default_model": chosen.default_model}

    return router


async def _stream(request: Request, provider: Provider, body: OllamaChatRequest,
                  started: float) -> WatchedStreamingResponse:
    chunks = aiter(provider.stream(chat_request(body)))

    async def first_chunk() -> ChatChunk:
        try:
            return await anext(chunks)
        except StopAsyncIteration:
            return ChatChunk(done=True)

    # Pull the first chunk here so errors before any output are HTTP errors (404, 503, a
    # blocked message or reply: 400…) rather than a 200 that fails later; a client that
    # hangs up meanwhile (a slow model load) cancels it. From the first chunk on, the
    # response watches the client.
    try:
        first = await cancel_on_disconnect(request, first_chunk())
        if first.error is not None:
            raise _error_of(first)
    except BaseException:
        await close_stream(chunks)
        raise
    relay = _Relay(chunks)
    return WatchedStreamingResponse(relay.lines(first, body, provider.name, started),
                                    media_type=NDJSON, on_close=relay.close)


def _error_of(chunk: ChatChunk) -> Exception:
    """The HTTP error for an error chunk that came before anything was sent."""
    assert chunk.error is not None
    if chunk.finish_reason == SAFETY_FINISH:  # the guard ends a blocked stream so
        return SafetyBlocked(chunk.error.detail, code=chunk.error.code,
                             extra={"stage": "output"})
    cls = _PROVIDER_ERRORS.get(chunk.error.code, ProviderError)
    return cls(chunk.error.detail, code=chunk.error.code)


_END = ChatChunk(done=True, finish_reason="stop")


class _Relay:
    """The guarded stream relayed as NDJSON lines. A task reads the stream into a
    bounded queue (a slow client slows the read), and every chunk already waiting goes
    out in one write: a fast stream costs one send per batch instead of one per token,
    and nothing waits to fill a batch, so the first token is not delayed. `close()` (the
    response's `on_close`, shielded) stops the reader and closes the stream upstream."""

    def __init__(self, chunks: AsyncIterator[ChatChunk]) -> None:
        self.chunks = chunks
        self.queue: asyncio.Queue[ChatChunk] = asyncio.Queue(maxsize=1024)
        self.pump: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
            await asyncio.wait([self.pump])
        # the reader closed the stream when it ran; a stream answered by its first chunk
        # alone, or a client gone before the reader started, is closed here
        await close_stream(self.chunks)

    async def _read(self) -> None:
        try:
            async with contextlib.aclosing(self.chunks):  # type: ignore[type-var]
                async for chunk in self.chunks:
                    await self.queue.put(chunk)
                    if chunk.done:
                        return
            await self.queue.put(_END)  # a provider that ended without its done chunk
        except Exception as exc:  # a provider that broke its contract: still end cleanly
            log.exception("provider stream failed")
            await self.queue.put(ChatChunk(done=True, error=ErrorInfo(
                detail=f"internal error: {type(exc).__name__}", code="internal_error")))

    async def lines(self, first: ChatChunk, body: OllamaChatRequest, provider: str,
                    started: float) -> AsyncIterator[bytes]:
        """NDJSON lines in Ollama's shapes, a batch per write."""
        model = json.dumps(body.model).encode()
        tail = b'},"done":false}\n'
        queue = self.queue
        chunk = first
        while True:
            out = []
            # one timestamp per batch: the lines of a batch were all ready at once
            head = (b'{"model":' + model + b',"created_at":"' + _now().encode() +
                    b'","message":{"role":"assistant","content":')
            while True:
                if chunk.error is not None:
                    out.append(_dumps({"model": body.model, "created_at": _now(),
                                       "error": chunk.error.detail,
                                       "code": chunk.error.code, "done": True,
                                       "agent_id": body.agent_id, "provider": provider}))
                    yield b"".join(out)
                    return
                if chunk.delta:
                    out.append(head + json.dumps(chunk.delta).encode() + tail)
                if chunk.done:
                    out.extend(_final(chunk, body, provider, started))
                    yield b"".join(out)
                    return
                if queue.empty():
                    break
                chunk = queue.get_nowait()
            if out:
                yield b"".join(out)
            if self.pump is None:
                self.pump = asyncio.create_task(self._read())
            chunk = await queue.get()


def _final(chunk: ChatChunk, body: OllamaChatRequest, provider: str,
           started: float) -> list[bytes]:
    """The last lines, as Ollama sends them: the tool calls (if any) on a line of their
    own, then the `done` line with the counts, plus the seed's fields."""
    model = chunk.model or body.model
    lines = []
    if chunk.tool_calls:
        lines.append(_dumps({"model": model, "created_at": _now(), "message": {
            "role": "assistant", "content": "",
            "tool_calls": _ollama_tool_calls(chunk.tool_calls)}, "done": False}))
    lines.append(_dumps({
        "model": model, "created_at": _now(),
        "message": {"role": "assistant", "content": ""},
        **_done_fields(chunk.finish_reason, chunk.usage, started),
        "agent_id": body.agent_id, "provider": provider,
        "usage": chunk.usage.model_dump() if chunk.usage else None}))
    return lines


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"

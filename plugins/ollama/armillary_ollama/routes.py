"""The multi-agent seed's Ollama routes: `POST /ollama/chat` and `GET /ollama/models`.

`POST /ollama/chat` takes the seed's `OllamaChatRequest` and answers one JSON object, or,
when the body says `"stream": true` or the client accepts only `application/x-ndjson`,
an NDJSON stream shaped like Ollama's own chat stream. Failures before the first token
are HTTP errors with the kernel's `{"detail", "code"}` body; a failure mid-stream is a
last line `{"error": ..., "code": ..., "done": true}`.
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
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from armillary.deps import KernelDep
from armillary.errors import InvalidRequest
from armillary.models import ChatChunk, ChatRequest, ErrorInfo, Message, Role
from armillary.providers import Provider

NDJSON = "application/x-ndjson"
log = logging.getLogger("armillary.ollama")

_ROLES: dict[str, Role] = {"system": "system", "user": "user", "human": "user",
                           "assistant": "assistant", "agent": "assistant", "ai": "assistant",
                           "bot": "assistant", "model": "assistant", "tool": "tool"}


class OllamaChatRequest(BaseModel):
    """The seed's request model, plus `stream` and an optional provider instance."""

    model: str = Field(..., description="Ollama model name")
    message: str = Field(..., description="User message")
    agent_id: str | None = Field(None, description="Associated agent ID")
    conversation_history: list[dict[str, Any]] | None = Field(
        None, description="Recent conversation history: [{role, content}, ...]")
    temperature: float | None = Field(0.7, description="Response temperature", ge=0.0,
                                      le=2.0)
    max_tokens: int | None = Field(2048, description="Maximum response tokens", ge=1,
                                   le=8192)
    stream: bool = Field(False, description="Answer an NDJSON stream of tokens")
    provider: str | None = Field(None, description="Ollama instance (default: the "
                                 "plugin's default instance)")


def _history(entries: list[dict[str, Any]] | None) -> list[Message]:
    messages = []
    for entry in entries or []:
        role = _ROLES.get(str(entry.get("role") or entry.get("sender") or "user").lower(),
                          "user")
        content = entry.get("content", entry.get("message", ""))
        if not isinstance(content, str):
            content = json.dumps(content)
        messages.append(Message(role=role, content=content,
                                name=entry.get("tool_name") or entry.get("name")))
    return messages


def chat_request(body: OllamaChatRequest) -> ChatRequest:
    return ChatRequest(
        messages=[*_history(body.conversation_history),
                  Message(role="user", content=body.message)],
        model=body.model, temperature=body.temperature, max_tokens=body.max_tokens)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def build_router(instances: list[str], default: str) -> APIRouter:
    router = APIRouter(tags=["ollama"])

    def pick(kernel: Any, name: str | None) -> Provider:
        name = name or default
        if name not in instances:
            raise InvalidRequest(f"provider {name!r} is not an Ollama instance "
                                 f"(have: {', '.join(instances)})", code="provider_not_found")
        provider: Provider = kernel.provider(name)
        return provider

    @router.post("/ollama/chat", response_model=None)
    async def ollama_chat(body: OllamaChatRequest, request: Request,
                          kernel: KernelDep) -> dict[str, Any] | StreamingResponse:
        """Chat with an Ollama model (the seed's `chat_with_streaming`)."""
        provider = pick(kernel, body.provider)
        accept = request.headers.get("accept", "")
        started = time.perf_counter()
        if body.stream or (NDJSON in accept and "application/json" not in accept):
            return await _stream(provider, body)
        reply = await provider.chat(chat_request(body))
        message = reply.message.model_dump(exclude_none=True,
                                           include={"role", "content", "tool_calls"})
        return {
            "model": reply.model, "created_at": _now(), "message": message,
            "response": reply.message.content, "done": True,
            "done_reason": reply.finish_reason, "agent_id": body.agent_id,
            "provider": provider.name,
            "usage": reply.usage.model_dump() if reply.usage else None,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        }

    @router.get("/ollama/models")
    async def ollama_models(kernel: KernelDep, provider: str | None = None) -> dict[str, Any]:
        """Models available on the Ollama host (`/api/tags`)."""
        chosen = pick(kernel, provider)
        models = await chosen.models()
        return {"models": [m.model_dump() for m in models], "provider": chosen.name,
                "default_model": chosen.default_model}

    return router


async def _stream(provider: Provider, body: OllamaChatRequest) -> StreamingResponse:
    chunks = provider.stream(chat_request(body))
    # Pull the first chunk here so errors before any output are HTTP errors (404, 503…)
    # rather than a 200 that fails later.
    try:
        first = await anext(aiter(chunks))
    except StopAsyncIteration:
        first = ChatChunk(done=True)
    except BaseException:
        await _close(chunks)
        raise
    return StreamingResponse(_lines(first, chunks, body), media_type=NDJSON)


async def _close(chunks: AsyncIterator[ChatChunk]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


_END = ChatChunk(done=True, finish_reason="stop")


async def _pump(chunks: AsyncIterator[ChatChunk],
                queue: asyncio.Queue[ChatChunk]) -> None:
    """Read the provider's stream into `queue` (bounded: a slow client slows the read)."""
    try:
        async with contextlib.aclosing(chunks):  # type: ignore[type-var]
            async for chunk in chunks:
                await queue.put(chunk)
                if chunk.done:
                    return
        await queue.put(_END)  # a provider that ended without its done chunk
    except Exception as exc:  # a provider that broke its contract: still end cleanly
        log.exception("provider stream failed")
        await queue.put(ChatChunk(done=True, error=ErrorInfo(
            detail=f"internal error: {type(exc).__name__}", code="internal_error")))


async def _lines(first: ChatChunk, chunks: AsyncIterator[ChatChunk],
                 body: OllamaChatRequest) -> AsyncIterator[bytes]:
    """NDJSON lines. Chunks that are already waiting go out in one write: a fast stream
    costs one send per batch instead of one per token, and nothing waits to fill a batch,
    so the first token is not delayed."""
    head = b'{"model":' + json.dumps(body.model).encode() + \
        b',"message":{"role":"assistant","content":'
    tail = b'},"done":false}\n'
    queue: asyncio.Queue[ChatChunk] = asyncio.Queue(maxsize=1024)
    pump: asyncio.Task[None] | None = None
    chunk = first
    try:
        while True:
            out = []
            while True:
                if chunk.error is not None:
                    out.append(_dumps({"model": body.model, "error": chunk.error.detail,
                                       "code": chunk.error.code, "done": True,
                                       "agent_id": body.agent_id}))
                    yield b"".join(out)
                    return
                if chunk.done:
                    out.append(_final(chunk, body))
                    yield b"".join(out)
                    return
                out.append(head + json.dumps(chunk.delta).encode() + tail)
                if queue.empty():
                    break
                chunk = queue.get_nowait()
            yield b"".join(out)
            if pump is None:
                pump = asyncio.create_task(_pump(chunks, queue))
            chunk = await queue.get()
    finally:
        # the client went away or the stream ended: the upstream stream closes at once
        if pump is None:
            await _close(chunks)
        else:
            pump.cancel()
            await asyncio.wait([pump])


def _final(chunk: ChatChunk, body: OllamaChatRequest) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": chunk.delta}
    if chunk.tool_calls:
        message["tool_calls"] = [c.model_dump() for c in chunk.tool_calls]
    return _dumps({"model": chunk.model or body.model, "created_at": _now(),
                   "message": message, "done": True, "done_reason": chunk.finish_reason,
                   "agent_id": body.agent_id,
                   "usage": chunk.usage.model_dump() if chunk.usage else None})


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"

"""A provider that plays back a script: text, token streams, tool calls, delays, faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from armillary._errors import ArmillaryError
from armillary._models import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ErrorInfo,
    Message,
    ModelInfo,
    ProviderHealth,
    ToolCall,
    Usage,
)
from armillary._providers import Provider


@dataclass
class Turn:
    """One scripted reply.

    `chunks` is the token stream (default: `text` split after each space). `delay` is slept
    before every chunk. `error` is raised before anything is produced; `fail_after` yields
    that many chunks and then an error chunk (`error` or a `provider_error`)."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    chunks: list[str] | None = None
    delay: float = 0.0
    error: ArmillaryError | None = None
    fail_after: int | None = None

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return self.chunks
        words = self.text.split(" ")
        return [w + " " for w in words[:-1]] + [words[-1]] if self.text else []


class ScriptedProvider(Provider):
    """Replies with its turns in order; the last one repeats once the script runs out.

    Every request is recorded in `requests`; `open_streams` counts streams not yet closed
    (a test of cancellation asserts it returns to 0)."""

    def __init__(self, turns: list[Turn | str] | None = None, *, name: str = "scripted",
                 default_model: str = "scripted-1", reachable: bool = True) -> None:
        self.name = name
        self.default_model = default_model
        self.turns = [t if isinstance(t, Turn) else Turn(text=t) for t in (turns or ["ok"])]
        self.requests: list[ChatRequest] = []
        self.reachable = reachable
        self.open_streams = 0
        self.closed_streams = 0
        self._next = 0

    def _turn(self, request: ChatRequest) -> Turn:
        self.requests.append(request)
        turn = self.turns[min(self._next, len(self.turns) - 1)]
        self._next += 1
        return turn

    def _usage(self, request: ChatRequest, turn: Turn) -> Usage:
        prompt = sum(len(m.content.split()) for m in request.messages)
        completion = len(turn.pieces())
        return Usage(prompt_tokens=prompt, completion_tokens=completion,
                     total_tokens=prompt + completion)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        turn = self._turn(request)
        if turn.error is not None and turn.fail_after is None:
            raise turn.error
        for _ in turn.pieces():
            if turn.delay:
                await asyncio.sleep(turn.delay)
        return ChatResponse(
            message=Message(role="assistant", content=turn.text,
                            tool_calls=list(turn.tool_calls) or None),
            model=request.model or self.default_model,
            usage=self._usage(request, turn),
            finish_reason="tool_calls" if turn.tool_calls else "stop",
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        turn = self._turn(request)
        if turn.error is not None and turn.fail_after is None:
            raise turn.error
        model = request.model or self.default_model
        self.open_streams += 1
        try:
            for i, piece in enumerate(turn.pieces()):
                if turn.fail_after is not None and i >= turn.fail_after:
                    err = turn.error or ArmillaryError("scripted failure", code="provider_error")
                    yield ChatChunk(done=True, model=model,
                                    error=ErrorInfo(detail=err.detail, code=err.code))
                    return
                if turn.delay:
                    await asyncio.sleep(turn.delay)
                yield ChatChunk(delta=piece, model=model)
            yield ChatChunk(done=True, model=model, tool_calls=list(turn.tool_calls) or None,
                            usage=self._usage(request, turn),
                            finish_reason="tool_calls" if turn.tool_calls else "stop")
        finally:
            self.open_streams -= 1
            self.closed_streams += 1

    async def models(self) -> list[ModelInfo]:
        return [ModelInfo(name=self.default_model)]

    async def health(self) -> ProviderHealth:
        if self.reachable:
            return ProviderHealth(reachable=True, latency_ms=0.0)
        return ProviderHealth(reachable=False, detail="scripted: unreachable")

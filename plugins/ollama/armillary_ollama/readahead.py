"""`ReadAhead`: a provider whose streams are read ahead, the chunks already waiting merged.

Put under the guard (`guard.provider(ReadAhead(provider))`), it makes the output stage
scan once per batch instead of once per token: each look at a stream re-reads the check's
whole hold-back window, so a fast stream checked token by token costs a window's scan per
token. A slow stream is unchanged (nothing waits, every token goes on alone, at once);
only when tokens arrive faster than they are checked and sent do they travel together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from armillary import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ErrorInfo,
    ModelInfo,
    Provider,
    ProviderHealth,
    close_stream,
)

log = logging.getLogger("armillary.ollama")

#: chunks read ahead at most (a slow consumer slows the upstream read)
QUEUE_SIZE = 1024


def _plain(chunk: ChatChunk) -> bool:
    """Only text: a chunk that can be merged into the next one."""
    return not (chunk.done or chunk.error or chunk.tool_calls or chunk.usage
                or chunk.finish_reason)


class ReadAhead(Provider):
    """`provider` with its streams read ahead by a task into a bounded queue; each chunk
    yielded carries the text of every plain chunk that was waiting (a done, error or
    tool-call chunk ends a batch and keeps its own fields). The first chunk is read
    directly, so errors before it are raised as the provider raised them."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.name = provider.name
        self.default_model = provider.default_model

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return await self.provider.chat(request)

    async def models(self) -> list[ModelInfo]:
        return await self.provider.models()

    async def health(self) -> ProviderHealth:
        return await self.provider.health()

    async def aclose(self) -> None:
        """Nothing: the provider underneath belongs to the kernel, which closes it."""

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        upstream = aiter(self.provider.stream(request))
        batches = _Batches()
        reader: asyncio.Task[None] | None = None
        try:
            try:
                chunk = await anext(upstream)
            except StopAsyncIteration:
                return
            while True:
                yield chunk
                if chunk.done:
                    return
                if reader is None:
                    reader = asyncio.create_task(_read(upstream, batches.queue))
                chunk = await batches.next()
        finally:
            if reader is None:
                await close_stream(upstream)
            else:
                # the reader closes the upstream stream as it ends; one cancelled before
                # it ever ran did not open it, and it is closed here once that is sure
                reader.cancel()
                try:
                    await asyncio.wait([reader])
                finally:
                    if reader.done():
                        await close_stream(upstream)


async def _read(upstream: AsyncIterator[ChatChunk], queue: asyncio.Queue[ChatChunk]) -> None:
    try:
        async with contextlib.aclosing(upstream):  # type: ignore[type-var]
            async for chunk in upstream:
                await queue.put(chunk)
                if chunk.done:
                    return
        await queue.put(ChatChunk(done=True, finish_reason="stop"))  # ended without done
    except Exception as exc:  # a provider that broke its contract: still end cleanly
        log.exception("provider stream failed")
        await queue.put(ChatChunk(done=True, error=ErrorInfo(
            detail=f"internal error: {type(exc).__name__}", code="internal_error")))


class _Batches:
    """The read-ahead queue, taken a batch at a time."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[ChatChunk] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._held: ChatChunk | None = None

    async def next(self) -> ChatChunk:
        """The next chunk, with the text of the plain chunks waiting behind it merged in,
        up to (and into) a done chunk. An error chunk is never merged into: the guard
        passes it on as it is, so text in it would go out unchecked; it waits for the
        next call instead."""
        if self._held is not None:
            chunk, self._held = self._held, None
            return chunk
        chunk = await self.queue.get()
        if not _plain(chunk) or self.queue.empty():
            return chunk
        parts = [chunk.delta]
        while not self.queue.empty():
            following = self.queue.get_nowait()
            if _plain(following):
                parts.append(following.delta)
                continue
            if following.error is not None or not following.done:
                self._held = following
                break
            return following.model_copy(update={"delta": "".join(parts) + following.delta})
        return ChatChunk(delta="".join(parts), model=chunk.model)

"""One bounded model call: an argument, a moderator's decision or the synthesis.

Calls go through `ctx.provider()`, so every registered safety check runs on them (input
before the call, output on the stream). Each call is bounded by the debate's time limit:
when it passes, the stream is closed (the model server sees the hang-up) and what
arrived so far is kept, marked `timeout`; the debate goes on.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from armillary import ArmillaryError, ChatRequest, Message, RunContext, close_stream


class Participant(BaseModel):
    """An agent as it was when the debate started (kept in the run's metadata, so a
    debate reads the same after a restart or a change to plugins.toml)."""

    name: str
    instructions: str = ""
    #: the provider by name (the default one is resolved at start)
    provider: str | None = None
    model: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Spoken:
    text: str
    #: `ok`, `timeout` or `error`
    status: str
    duration: float
    code: str | None = None
    detail: str | None = None


async def speak(ctx: RunContext, who: Participant, prompt: str, limit: float) -> Spoken:
    """`who` answers `prompt` within `limit` seconds."""
    messages = [Message(role="user", content=prompt)]
    if who.instructions:
        messages.insert(0, Message(role="system", content=who.instructions))
    request = ChatRequest(messages=messages, model=who.model, options=dict(who.options))
    parts: list[str] = []
    started = time.monotonic()

    def spoken(status: str, code: str | None = None, detail: str | None = None) -> Spoken:
        return Spoken("".join(parts).strip(), status, round(time.monotonic() - started, 4),
                      code, detail)

    stream = None
    try:
        async with asyncio.timeout(limit):
            stream = ctx.provider(who.provider).stream(request)
            async for chunk in stream:
                if chunk.error is not None:  # a provider failure or a safety block
                    return spoken("error", chunk.error.code, chunk.error.detail)
                parts.append(chunk.delta)
    except TimeoutError:
        return spoken("timeout", "argument_timeout",
                      f"{who.name} did not finish within {limit:g} s")
    except ArmillaryError as exc:  # refused before it streamed (input check, no provider)
        return spoken("error", exc.code, exc.detail)
    finally:
        if stream is not None:
            await close_stream(stream)
    return spoken("ok")

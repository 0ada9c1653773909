"""The guard: checked provider calls, the output hold-back window, checked tools."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from armillary._guard import Guard, close_stream
from armillary._models import ChatChunk, ChatRequest, Message, Verdict
from armillary._safety import SafetyBlocked, SafetyCheck, SafetyPipeline, Stage
from armillary._tools import ToolError, tool
from armillary.testing import ScriptedProvider, Turn
from armillary.testing.checks import PII

SSN, EMAIL = "123-45-6789", "jane.doe@example.com"
#: the secrets split across chunk boundaries in every possible place
SECRET_TEXT = f"Her SSN is {SSN} and her mail is {EMAIL}, thanks."


def every_split(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


async def streamed(guard: Guard, provider: ScriptedProvider,
                   content: str = "hi") -> list[ChatChunk]:
    checked = guard.provider(provider)
    request = ChatRequest(messages=[Message(role="user", content=content)])
    return [c async for c in checked.stream(request)]


def text_of(chunks: list[ChatChunk]) -> str:
    return "".join(c.delta for c in chunks)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11])
async def test_a_redacting_check_never_lets_a_split_secret_out(size: int) -> None:
    guard = Guard(SafetyPipeline([PII()]))
    chunks = await streamed(guard, ScriptedProvider([Turn(chunks=every_split(SECRET_TEXT,
                                                                               size))]))
    out = text_of(chunks)
    assert out == "Her SSN is [ssn] and her mail is [email], thanks."
    for piece in (SSN, "123-45", "6789", EMAIL, "jane.doe", "example.com"):
        assert all(piece not in c.delta for c in chunks)
        assert piece not in out
    assert chunks[-1].done and chunks[-1].error is None


async def test_text_flows_at_most_the_window_behind_the_model() -> None:
    check = PII()
    guard = Guard(SafetyPipeline([check]))
    words = ["word "] * 60
    provider = ScriptedProvider([Turn(chunks=words)])
    released = 0
    fed = 0
    async for chunk in guard.provider(provider).stream(
            ChatRequest(messages=[Message(role="user", content="go")])):
        if not chunk.done:
            fed += 5  # every chunk the guard lets through came after one model chunk
        released += len(chunk.delta)
        if not chunk.done:
            assert fed - released <= check.span
    assert released == 300


async def test_a_blocking_check_ends_the_stream_with_a_coded_error_and_no_secret() -> None:
    guard = Guard(SafetyPipeline([PII(block=True)]))
    chunks = await streamed(guard, ScriptedProvider([Turn(chunks=every_split(SECRET_TEXT,
                                                                               3))]))
    assert SSN not in text_of(chunks) and "123-45" not in text_of(chunks)
    assert chunks[-1].done
    assert chunks[-1].error is not None and chunks[-1].error.code == "output_blocked"


class WholeText(SafetyCheck):
    name = "whole"
    stages = frozenset({"output"})

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def check(self, text: str, *, stage: Stage, context: dict[str, Any]) -> Verdict:
        self.seen.append(text)
        return Verdict(redacted=text.replace("secret", "[x]"))


async def test_a_whole_text_check_holds_the_stream_to_the_end() -> None:
    check = WholeText()
    guard = Guard(SafetyPipeline([check]))
    chunks = await streamed(guard, ScriptedProvider(["a secret word"]))
    assert [c.delta for c in chunks] == ["a [x] word"]
    assert check.seen == ["a secret word"]


async def test_no_output_check_means_no_hold_back() -> None:
    guard = Guard(SafetyPipeline([]))
    chunks = await streamed(guard, ScriptedProvider(["one two three"]))
    assert [c.delta for c in chunks] == ["one ", "two ", "three", ""]


async def test_the_input_stage_redacts_the_newest_user_message_before_the_provider() -> None:
    provider = ScriptedProvider(["ok"])
    guard = Guard(SafetyPipeline([PII()]))
    await streamed(guard, provider, content=f"my ssn is {SSN}")
    assert provider.requests[0].messages[-1].content == "my ssn is [ssn]"


async def test_a_blocked_input_never_reaches_the_provider() -> None:
    provider = ScriptedProvider(["ok"])
    guard = Guard(SafetyPipeline([PII(block=True)]))
    with pytest.raises(SafetyBlocked) as caught:
        await streamed(guard, provider, content=f"my ssn is {SSN}")
    assert caught.value.code == "input_blocked" and caught.value.status_code == 400
    assert provider.requests == []


async def test_chat_replies_are_checked_whole() -> None:
    guard = Guard(SafetyPipeline([PII()]))
    reply = await guard.provider(ScriptedProvider([SECRET_TEXT])).chat(
        ChatRequest(messages=[Message(role="user", content="hi")]))
    assert reply.message.content == "Her SSN is [ssn] and her mail is [email], thanks."


async def test_verdicts_are_reported_without_the_matched_text() -> None:
    seen: list[tuple[str, Verdict]] = []

    async def listen(stage: Stage, verdict: Verdict) -> None:
        seen.append((stage, verdict))

    guard = Guard(SafetyPipeline([PII()]), on_verdict=listen)
    await streamed(guard, ScriptedProvider([Turn(chunks=every_split(SECRET_TEXT, 4))]))
    assert [(s, v.check) for s, v in seen] == [("output", "pii")]


@tool
def echo(text: str) -> str:
    """Echo."""
    return text


async def test_a_checked_tool_runs_the_tool_stage_first() -> None:
    guard = Guard(SafetyPipeline([PII(block=True, stages=frozenset({"tool"}))]))
    checked = guard.tool(echo)
    assert await checked.invoke({"text": "fine"}) == "fine"
    with pytest.raises(ToolError) as caught:
        await checked.invoke({"text": SSN})
    assert caught.value.code == "tool_blocked"


async def test_close_stream_finishes_closing_when_cancelled_again() -> None:
    closed = asyncio.Event()

    class Slow:
        async def aclose(self) -> None:
            await asyncio.sleep(0.05)
            closed.set()

    task = asyncio.create_task(close_stream(Slow()))
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed.is_set()

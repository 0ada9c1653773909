"""`ReadAhead`, what /ollama/chat puts under the guard when output checks are on: the
chunks waiting in its queue are merged, never across an error, and the guard above it
sees one chunk per batch. A `ScriptedProvider` without delays produces its whole reply
before the consumer runs again, so the batches here are exact; the relay over real
sockets is tested in test_ollama_routes_guarded.py."""

from __future__ import annotations

import asyncio

from armillary_ollama.readahead import ReadAhead

from armillary._guard import Guard
from armillary._models import ChatChunk, ChatRequest, Message, ToolCall
from armillary._safety import SafetyPipeline
from armillary.testing import ScriptedProvider, Turn
from armillary.testing.checks import PII

ASK = ChatRequest(messages=[Message(role="user", content="hi")])


async def chunks_of(provider: ScriptedProvider | ReadAhead) -> list[ChatChunk]:
    return [c async for c in provider.stream(ASK)]


async def test_waiting_chunks_are_merged_after_the_first() -> None:
    scripted = ScriptedProvider([Turn(chunks=["a", "b", "c", "d"])])
    chunks = await chunks_of(ReadAhead(scripted))
    assert [c.delta for c in chunks] == ["a", "bcd"]  # the first goes on alone, at once
    assert chunks[-1].done and chunks[-1].usage is not None
    assert scripted.open_streams == 0


async def test_text_is_never_merged_into_an_error_chunk() -> None:
    scripted = ScriptedProvider([Turn(chunks=["a", "b", "c", "d"], fail_after=3)])
    chunks = await chunks_of(ReadAhead(scripted))
    assert [(c.delta, c.error is not None) for c in chunks] == [
        ("a", False), ("bc", False), ("", True)]


async def test_tool_calls_stay_on_the_done_chunk() -> None:
    call = ToolCall(name="get_weather", arguments={"city": "Oslo"})
    chunks = await chunks_of(ReadAhead(ScriptedProvider([
        Turn(chunks=["a", "b"], tool_calls=[call])])))
    assert chunks[-1].done and chunks[-1].delta == "b" and chunks[-1].tool_calls == [call]


async def test_the_guard_above_sees_one_chunk_per_batch_and_still_redacts() -> None:
    check = PII()
    guard = Guard(SafetyPipeline([check]))
    text = "My SSN is 123-45-6789 and that is all."
    scripted = ScriptedProvider([Turn(chunks=list(text))])  # one character a chunk
    out = [c async for c in guard.provider(ReadAhead(scripted)).stream(ASK)]
    assert "".join(c.delta for c in out) == "My SSN is [ssn] and that is all."
    output_looks = [seen for stage, seen in check.seen if stage == "output"]
    assert len(output_looks) <= 3  # a look per batch (and the final one), not 38


async def test_closing_the_stream_mid_reply_stops_the_reader_and_closes_upstream() -> None:
    scripted = ScriptedProvider([Turn(chunks=[f"t{i} " for i in range(100)], delay=0.01)])
    stream = ReadAhead(scripted).stream(ASK)
    assert (await anext(stream)).delta == "t0 "
    await anext(stream)
    assert scripted.open_streams == 1
    await stream.aclose()  # type: ignore[attr-defined]
    assert scripted.open_streams == 0 and scripted.closed_streams == 1


async def test_a_consumer_cancelled_mid_reply_closes_upstream() -> None:
    scripted = ScriptedProvider([Turn(chunks=[f"t{i} " for i in range(100)], delay=0.01)])

    async def consume() -> None:
        async for _ in ReadAhead(scripted).stream(ASK):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.wait([task])
    assert task.cancelled()
    assert scripted.open_streams == 0 and scripted.closed_streams == 1

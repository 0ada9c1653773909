"""POST /chat with stream=true: plain text and SSE, errors, and clients that go away."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx

from armillary._errors import ModelNotFound, ProviderUnavailable
from armillary.testing import Turn
from tests.plugins.chat.conftest import ChatServer, Served


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for frame in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def eventually(check: Any, timeout: float = 10.0) -> None:
    """Poll `check()` until true; fail (never hang) after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_plain_text_stream_arrives_in_chunks_and_is_remembered(
        chat_server: ChatServer) -> None:
    async with chat_server([Turn(text="Hello from the Pi", delay=0.01)]) as s:
        async with s.client.stream("POST", "/chat", json={"message": "hi", "stream": True}) as r:
            pieces = [p async for p in r.aiter_text()]
            cid = r.headers["x-conversation-id"]
        history = (await s.client.get(f"/chat/{cid}")).json()
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "".join(pieces) == "Hello from the Pi"
    assert len(pieces) > 1
    assert history["turns"][0]["assistant"] == "Hello from the Pi"
    assert history["turns"][0]["partial"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", history["turns"][0]["at"])


async def test_sse_when_the_client_accepts_event_stream(chat_server: ChatServer) -> None:
    async with chat_server(["one two three"]) as s:
        r = await s.client.post("/chat", json={"message": "count", "stream": True,
                                               "conversation_id": "sse-1"},
                                headers={"Accept": "text/event-stream"})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    kinds = [e for e, _ in events]
    assert kinds == ["start", "delta", "delta", "delta", "done"]
    assert events[0][1] == {"conversation_id": "sse-1", "agent": "general",
                            "model": "scripted-1"}
    assert "".join(d["delta"] for k, d in events if k == "delta") == "one two three"
    done = events[-1][1]
    assert done["reply"] == "one two three"
    assert done["conversation_id"] == "sse-1"
    assert done["usage"]["completion_tokens"] == 3


async def test_a_provider_down_before_the_stream_starts_is_a_503(chat_server: ChatServer) -> None:
    turns = [Turn(error=ProviderUnavailable("connection refused")),
             Turn(text="a b", fail_after=0, error=ModelNotFound("no model 'x'"))]
    async with chat_server(turns) as s:
        down = await s.client.post("/chat", json={"message": "hi", "stream": True})
        first_chunk_error = await s.client.post("/chat", json={"message": "hi", "stream": True})
    assert (down.status_code, down.json()) == (
        503, {"detail": "connection refused", "code": "provider_unavailable"})
    assert (first_chunk_error.status_code, first_chunk_error.json()["code"]) == (
        404, "model_not_found")
    assert s.provider.open_streams == 0


async def test_a_failure_mid_stream_ends_with_an_error_marker_and_keeps_the_partial_reply(
        chat_server: ChatServer) -> None:
    turn = Turn(text="alpha beta gamma delta", fail_after=2,
                error=ProviderUnavailable("ollama went away"))
    async with chat_server([turn]) as s:
        r = await s.client.post("/chat", json={"message": "go", "stream": True,
                                               "conversation_id": "mid"})
        history = (await s.client.get("/chat/mid")).json()
    assert r.status_code == 200
    assert r.text == "alpha beta \n[error: provider_unavailable] ollama went away\n"
    assert history["turns"][0]["assistant"] == "alpha beta "
    assert history["turns"][0]["partial"] is True


async def test_a_failure_mid_sse_stream_ends_with_an_error_event(chat_server: ChatServer) -> None:
    turn = Turn(text="alpha beta gamma", fail_after=1)
    async with chat_server([turn]) as s:
        r = await s.client.post("/chat", json={"message": "go", "stream": True},
                                headers={"Accept": "text/event-stream"})
    events = parse_sse(r.text)
    assert [e for e, _ in events] == ["start", "delta", "error"]
    assert events[-1][1]["code"] == "provider_error"


async def _disconnect_after_first_chunk(s: Served, cid: str, headers: dict[str, str]) -> str:
    async with s.client.stream("POST", "/chat", headers=headers, json={
            "message": "tell me a long story", "stream": True, "conversation_id": cid}) as r:
        assert r.status_code == 200
        async for piece in r.aiter_text():
            if piece:
                return piece
    raise AssertionError("no chunk arrived")


async def test_disconnect_mid_stream_stops_upstream_and_keeps_the_partial_reply(
        chat_server: ChatServer) -> None:
    # the whole script would take 1000 * 0.2 s; the provider must be closed long before
    story = Turn(chunks=[f"w{i} " for i in range(1000)], delay=0.2)
    async with chat_server([story, "fine"]) as s:
        seen = await _disconnect_after_first_chunk(s, "story", {})

        async def upstream_closed() -> bool:
            return s.provider.open_streams == 0 and s.provider.closed_streams == 1

        await eventually(upstream_closed)

        async def remembered() -> bool:
            return (await s.client.get("/chat/story")).status_code == 200

        await eventually(remembered)
        turn = (await s.client.get("/chat/story")).json()["turns"][0]
        # the next turn sees what was produced before the client left
        await s.client.post("/chat", json={"message": "and then?", "conversation_id": "story"})
    assert turn["partial"] is True
    assert turn["assistant"].startswith(seen)
    assert len(turn["assistant"].split()) < 1000
    assert s.provider.requests[-1].messages[-2].content == turn["assistant"]


async def test_disconnect_mid_sse_stream_also_stops_upstream(chat_server: ChatServer) -> None:
    story = Turn(chunks=[f"w{i} " for i in range(1000)], delay=0.2)
    async with chat_server([story]) as s:
        await _disconnect_after_first_chunk(s, "sse-story", {"Accept": "text/event-stream"})

        async def upstream_closed() -> bool:
            return s.provider.closed_streams == 1 and s.provider.open_streams == 0

        await eventually(upstream_closed)


async def test_concurrent_streams_in_different_conversations_do_not_mix(
        chat_server: ChatServer) -> None:
    async with chat_server([Turn(text="same words for all", delay=0.01)]) as s:

        async def one(i: int) -> httpx.Response:
            return await s.client.post("/chat", json={"message": f"q{i}", "stream": True,
                                                      "conversation_id": f"c{i}"})

        replies = await asyncio.gather(*(one(i) for i in range(10)))
        histories = [(await s.client.get(f"/chat/c{i}")).json() for i in range(10)]
    assert all(r.text == "same words for all" for r in replies)
    assert [h["turns"][0]["user"] for h in histories] == [f"q{i}" for i in range(10)]
    assert s.provider.open_streams == 0

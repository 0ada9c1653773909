"""Clients that hang up before any reply reaches them: the provider's work is cancelled,
nothing is remembered, and /agents does not count it as an agent error."""

from __future__ import annotations

import asyncio
from typing import Any

import armillary_agents
import armillary_chat
import armillary_ollama
import httpx
import pytest

from armillary._errors import ProviderUnavailable
from armillary._models import ChatRequest, ChatResponse
from armillary.testing import ScriptedProvider, Turn, make_app, serve_app
from tests.plugins.chat.conftest import ChatServer, Served
from tests.plugins.chat.test_chat_stream import _disconnect_after_first_chunk, eventually
from tests.support.ollama_server import OllamaTestServer, Reply


class WatchedProvider(ScriptedProvider):
    """A scripted provider that counts non-stream calls started, cancelled and finished."""

    def __init__(self, turns: list[Turn | str]) -> None:
        super().__init__(turns)
        self.started = self.cancelled = self.finished = 0

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self.started += 1
        try:
            result = await super().chat(request)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        return result


async def general_counters(s: Served) -> dict[str, Any]:
    agents = (await s.client.get("/agents")).json()["agents"]
    return {a["name"]: a for a in agents}["general"]


async def hang_up(url: str, body: dict[str, Any]) -> None:
    """POST and give up after 0.3 s without a response (httpx then closes the socket)."""
    async with httpx.AsyncClient(base_url=url, timeout=0.3) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            async with impatient.stream("POST", "/chat", json=body) as r:
                await r.aread()


async def test_a_non_stream_client_that_hangs_up_cancels_the_provider_call(
        chat_server: ChatServer) -> None:
    # the reply would take 100 * 0.3 s; the client gives up after 0.3 s
    provider = WatchedProvider([Turn(chunks=["x "] * 100, text="slow", delay=0.3)])
    async with chat_server(provider=provider) as s:
        await hang_up(s.url, {"message": "hi", "conversation_id": "gone"})

        async def cancelled() -> bool:
            return provider.cancelled == 1

        await eventually(cancelled, timeout=5)

        async def counted() -> bool:
            return (await general_counters(s))["task_count"] == 1

        await eventually(counted)
        general = await general_counters(s)
        history = await s.client.get("/chat/gone")
    assert (provider.started, provider.finished) == (1, 0)
    # nothing reached the client, so there is no exchange to remember
    assert history.status_code == 404
    assert (general["error_count"], general["partial_count"], general["success_count"]) == (
        0, 1, 0)
    assert general["last_error_code"] is None


async def ollama_request_abandoned(body: dict[str, Any]) -> list[tuple[bool, bool]]:
    """A slow model load (Ollama answers nothing for 30 s) and a client that gives up on
    /chat after 0.3 s: how Ollama's answers stood ((client_closed, finished) each) once
    they ended, or after 5 s, while our server still runs."""
    with OllamaTestServer([Reply(text="too late", first_delay=30)]) as ollama:
        app = make_app({"ollama": armillary_ollama, "chat": armillary_chat,
                        "agents": armillary_agents},
                       config={"plugins": {"ollama": {"base_url": ollama.url,
                                                      "model": "llama3.2"}}})
        async with serve_app(app) as url:
            await hang_up(url, body)
            assert len(ollama.chat_requests) == 1
            await ollama.await_until(lambda: bool(ollama.replies) and all(
                r.ended_at is not None for r in ollama.replies), 5)
            return [(r.client_closed, r.finished) for r in ollama.replies]


async def test_a_non_stream_disconnect_closes_the_ollama_request() -> None:
    # the provider closed its request long before Ollama would have answered
    assert await ollama_request_abandoned({"message": "hi"}) == [(True, False)]


async def test_a_stream_client_gone_before_the_first_token_closes_upstream_and_stores_nothing(
        chat_server: ChatServer) -> None:
    # the first token would come after 30 s (a cold model load)
    async with chat_server([Turn(text="late reply", delay=30)]) as s:
        await hang_up(s.url, {"message": "hi", "stream": True, "conversation_id": "early"})

        async def upstream_closed() -> bool:
            return s.provider.closed_streams == 1 and s.provider.open_streams == 0

        await eventually(upstream_closed, timeout=5)

        async def counted() -> bool:
            return (await general_counters(s))["task_count"] == 1

        await eventually(counted)
        general = await general_counters(s)
        history = await s.client.get("/chat/early")
    assert history.status_code == 404
    assert (general["error_count"], general["partial_count"]) == (0, 1)
    assert general["last_error_code"] is None


async def test_a_stream_client_gone_before_the_first_ollama_token_closes_the_request() -> None:
    assert await ollama_request_abandoned({"message": "hi", "stream": True}) == [
        (True, False)]


async def test_a_disconnect_mid_stream_is_partial_not_an_agent_error(
        chat_server: ChatServer) -> None:
    story = Turn(chunks=[f"w{i} " for i in range(1000)], delay=0.2)
    async with chat_server([Turn(error=ProviderUnavailable("down")), story]) as s:
        failed = await s.client.post("/chat", json={"message": "first"})
        await _disconnect_after_first_chunk(s, "story", {})

        async def counted() -> bool:
            return (await general_counters(s))["task_count"] == 2

        await eventually(counted)
        general = await general_counters(s)
    assert failed.status_code == 503
    assert (general["error_count"], general["partial_count"], general["success_count"]) == (
        1, 1, 0)
    # the earlier real error is still the last one: a disconnect does not overwrite it
    assert general["last_error_code"] == "provider_unavailable"

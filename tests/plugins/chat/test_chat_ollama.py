"""/chat with the real Ollama plugin against the protocol-faithful Ollama test server."""

from __future__ import annotations

import asyncio
import math

import armillary_agents
import armillary_chat
import armillary_ollama
import httpx

from armillary.testing import free_port, make_app, serve_app
from tests.support.ollama_server import OllamaTestServer, Reply


def app_for(base_url: str, **chat: object):  # type: ignore[no-untyped-def]
    return make_app({"ollama": armillary_ollama, "chat": armillary_chat,
                     "agents": armillary_agents},
                    config={"plugins": {"ollama": {"base_url": base_url, "model": "llama3.2",
                                                   "connect_timeout": 2},
                                        "chat": chat}})


async def test_a_conversation_over_ollama_keeps_its_history() -> None:
    with OllamaTestServer(["I am a Pi.", "You asked who I am."]) as ollama:
        async with serve_app(app_for(ollama.url)) as url, httpx.AsyncClient(base_url=url) as c:
            first = (await c.post("/chat", json={"message": "who are you?"})).json()
            second = await c.post("/chat", json={"message": "what did I ask?", "stream": True,
                                                 "conversation_id": first["conversation_id"]})
    assert first["reply"] == "I am a Pi."
    assert first["model"] == "llama3.2"
    assert first["usage"]["completion_tokens"] is not None
    assert second.text == "You asked who I am."
    sent = ollama.chat_requests[-1].json["messages"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "who are you?"), ("assistant", "I am a Pi."), ("user", "what did I ask?")]


async def test_disconnect_closes_the_ollama_stream_and_keeps_the_partial_reply() -> None:
    story = Reply(tokens=[f"t{i} " for i in range(500)], delay=0.2)
    with OllamaTestServer([story]) as ollama:
        async with serve_app(app_for(ollama.url)) as url, httpx.AsyncClient(base_url=url) as c:
            async with c.stream("POST", "/chat", json={"message": "long story", "stream": True,
                                                       "conversation_id": "s"}) as r:
                async for piece in r.aiter_text():
                    if piece:
                        break
            closed = await asyncio.to_thread(
                ollama.wait_until, lambda: ollama.open_streams == 0, 10)
            for _ in range(200):
                got = await c.get("/chat/s")
                if got.status_code == 200:
                    break
                await asyncio.sleep(0.02)
    assert closed, "the Ollama stream was still being written"
    assert ollama.streams[-1].client_closed
    assert ollama.streams[-1].lines_sent < 500
    turn = got.json()["turns"][0]
    assert turn["partial"] is True
    assert turn["assistant"].startswith("t0 ")


async def test_ollama_not_running_is_503_provider_unavailable() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with serve_app(app_for(dead)) as url, httpx.AsyncClient(base_url=url) as c:
        plain = await c.post("/chat", json={"message": "hi"})
        streamed = await c.post("/chat", json={"message": "hi", "stream": True})
    for r in (plain, streamed):
        assert r.status_code == 503
        assert r.json()["code"] == "provider_unavailable"


async def test_an_unknown_model_is_404_model_not_found() -> None:
    with OllamaTestServer(models=["other:latest"]) as ollama:
        async with serve_app(app_for(ollama.url)) as url, httpx.AsyncClient(base_url=url) as c:
            r = await c.post("/chat", json={"message": "hi", "stream": True})
    assert (r.status_code, r.json()["code"]) == (404, "model_not_found")


async def test_ollama_failing_mid_stream_ends_the_stream_with_an_error_marker() -> None:
    with OllamaTestServer([Reply(text="one two three four", error="model crashed",
                                 after=2)]) as ollama:
        async with serve_app(app_for(ollama.url)) as url, httpx.AsyncClient(base_url=url) as c:
            r = await c.post("/chat", json={"message": "hi", "stream": True,
                                            "conversation_id": "m"})
            turn = (await c.get("/chat/m")).json()["turns"][0]
    assert r.text.startswith("one two ")
    assert "\n[error: provider_error] " in r.text and "model crashed" in r.text
    assert (turn["assistant"], turn["partial"]) == ("one two ", True)


async def test_a_stalled_ollama_stream_ends_with_a_timeout_marker_not_a_hang() -> None:
    with OllamaTestServer([Reply(text="one two three", after=1, stall=math.inf)]) as ollama:
        app = make_app({"ollama": armillary_ollama, "chat": armillary_chat},
                       config={"plugins": {"ollama": {"base_url": ollama.url,
                                                      "chunk_timeout": 0.5}}})
        async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=20) as c:
            r = await c.post("/chat", json={"message": "hi", "stream": True})
    assert r.text.startswith("one ")
    assert "[error: provider_timeout]" in r.text

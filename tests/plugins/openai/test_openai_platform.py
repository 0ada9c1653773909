"""The OpenAI provider's platform methods (client secrets, Responses, moderations)
against the OpenAI test server over loopback sockets."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from armillary_openai import OpenAIProvider

from armillary import ProviderError
from armillary.testing import free_port
from tests.support.openai_server import OpenAITestServer, Reply

KEY = "sk-platform"


@pytest.fixture
def server():
    with OpenAITestServer(api_key=KEY) as s:
        yield s


def provider(url: str, key: str | None = KEY) -> OpenAIProvider:
    return OpenAIProvider(base_url=url + "/v1", api_key=key, chunk_timeout=5,
                          connect_timeout=2, request_timeout=5)


async def collect(p: OpenAIProvider, body: dict) -> list[bytes]:
    return [chunk async for chunk in p.stream_response(body)]


async def test_client_secret(server: OpenAITestServer) -> None:
    p = provider(server.url)
    try:
        data = await p.create_client_secret(
            {"type": "realtime", "model": "gpt-realtime",
             "audio": {"output": {"voice": "marin"}}},
            expires_after={"anchor": "created_at", "seconds": 60})
    finally:
        await p.aclose()
    assert data["value"].startswith("ek_") and data["session"]["model"] == "gpt-realtime"
    assert p.has_api_key and not provider(server.url, None).has_api_key


async def test_client_secret_errors(server: OpenAITestServer) -> None:
    p = provider(server.url)
    try:
        with pytest.raises(ProviderError) as missing_type:
            await p.create_client_secret({"model": "gpt-realtime"})
        with pytest.raises(ProviderError) as expiry:
            await p.create_client_secret({"type": "realtime"},
                                         expires_after={"anchor": "created_at",
                                                        "seconds": 5})
    finally:
        await p.aclose()
    assert missing_type.value.status_code == 400
    assert missing_type.value.detail == "Missing required parameter: 'session.type'."
    assert missing_type.value.extra["upstream_code"] == "missing_required_parameter"
    assert expiry.value.status_code == 400


async def test_network_failures_are_502() -> None:
    p = provider(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(ProviderError) as whole:
            await p.create_response({"model": "gpt-4o-mini", "input": "x"})
        with pytest.raises(ProviderError) as streamed:
            await collect(p, {"model": "gpt-4o-mini", "input": "x"})
    finally:
        await p.aclose()
    assert whole.value.status_code == streamed.value.status_code == 502
    assert whole.value.code == streamed.value.code == "provider_unavailable"


async def test_whole_response_and_function_calls(server: OpenAITestServer) -> None:
    server.push_to("/v1/responses", Reply(text="ok", tool_calls=[
        {"id": "call_1", "name": "f", "arguments": {"a": 1}}]))
    p = provider(server.url)
    try:
        data = await p.create_response({"model": "gpt-4o", "input": "x", "stream": True})
    finally:
        await p.aclose()
    assert [item["type"] for item in data["output"]] == ["message", "function_call"]
    assert data["output"][1]["call_id"] == "call_1"
    assert "stream" not in server.requests_to("/v1/responses")[0].json


async def test_stream_yields_whole_events_across_split_chunks(
        server: OpenAITestServer) -> None:
    # each line its own HTTP chunk, CRLF endings, no blank line after the last event
    lines = ["event: response.created\r", 'data: {"type":"response.created",\r',
             'data: "sequence_number":0}\r', "\r", ": keep-alive\r", "\r",
             "event: response.completed\r", 'data: {"type":"response.completed"}']
    server.push_to("/v1/responses", Reply(lines=lines))
    p = provider(server.url)
    try:
        chunks = await collect(p, {"model": "gpt-4o", "input": "x"})
    finally:
        await p.aclose()
    # never part of an event: every piece ends with a blank line
    assert all(c.endswith((b"\n\n", b"\r\n\r\n")) for c in chunks)
    assert len(chunks) >= 2
    # byte for byte, the last event given the blank line its sender left out
    assert b"".join(chunks).decode() == "\n".join(lines) + "\n\n"


async def test_stream_error_status_and_broken_stream(server: OpenAITestServer) -> None:
    server.push_to("/v1/responses", Reply(status=401, error="bad key"),
                   Reply(tokens=["a", "b", "c"], drop_after=1))
    p = provider(server.url)
    try:
        with pytest.raises(ProviderError) as refused:
            await collect(p, {"model": "gpt-4o", "input": "x"})
        chunks = await collect(p, {"model": "gpt-4o", "input": "x"})
    finally:
        await p.aclose()
    assert refused.value.status_code == 401 and refused.value.code == "upstream_error"
    last = b"".join(chunks).decode().strip().split("\n\n")[-1]
    assert last.startswith("event: error\n")
    assert json.loads(last.split("data: ", 1)[1])["code"] == "provider_protocol_error"


async def test_cancel_closes_the_upstream_stream(server: OpenAITestServer) -> None:
    server.push_to("/v1/responses", Reply(tokens=["a", "b"], after=1, stall=math.inf))
    p = provider(server.url)
    got: list[bytes] = []

    async def read() -> None:
        async for chunk in p.stream_response({"model": "gpt-4o", "input": "x"}):
            got.append(chunk)

    task = asyncio.create_task(read())
    try:
        await server.await_until(lambda: bool(server.streams)
                                 and server.streams[0].lines_sent >= 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await server.await_until(lambda: server.streams[0].ended_at is not None)
    finally:
        await p.aclose()
    assert server.streams[0].client_closed and got


async def test_moderations(server: OpenAITestServer) -> None:
    p = provider(server.url)
    try:
        clean = await p.moderations("hello", model="omni-moderation-latest")
        flagged = await p.moderations(["you idiot", "fine"])
    finally:
        await p.aclose()
    assert clean["results"][0]["flagged"] is False
    assert len(clean["results"][0]["categories"]) == 13
    assert [r["flagged"] for r in flagged["results"]] == [True, False]
    assert flagged["results"][0]["categories"]["harassment"] is True
    assert server.requests_to("/v1/moderations")[1].json == {"input": ["you idiot", "fine"]}

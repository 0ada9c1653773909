"""POST /api/responses: whole replies (output_text, output_parsed) and the SSE relay,
through the real app on uvicorn against the OpenAI test server's `/v1/responses`."""

from __future__ import annotations

import json
import math

import pytest

from armillary import EventStreamParser
from tests.plugins.realtime.upstream_harness import API_KEY, upstream_app
from tests.support.openai_server import OpenAITestServer, Reply

RESPONSES = "/v1/responses"
MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")

TEXT_EVENTS = ["response.created", "response.in_progress", "response.output_item.added",
               "response.content_part.added"]
TEXT_END = ["response.output_text.done", "response.content_part.done",
            "response.output_item.done"]


@pytest.fixture
def server():
    with OpenAITestServer(api_key=API_KEY, models=MODELS) as s:
        yield s


def events(raw: str) -> list[tuple[str, dict]]:
    parser = EventStreamParser()
    out = []
    for line in raw.split("\n"):
        message = parser.feed(line.rstrip("\r"))
        if message is not None and message.comment is None:
            out.append((message.event, json.loads(message.data)))
    return out


async def test_whole_reply_carries_output_text(server: OpenAITestServer) -> None:
    server.push_to(RESPONSES, Reply(text="Hello there friend"))
    async with upstream_app(server) as (_, client):
        response = await client.post("/api/responses", json={
            "model": "gpt-4o-mini", "input": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "response" and body["status"] == "completed"
    assert body["output_text"] == "Hello there friend"
    assert "output_parsed" not in body
    assert server.requests_to(RESPONSES)[0].json == {
        "model": "gpt-4o-mini", "input": [{"role": "user", "content": "hi"}]}


async def test_json_schema_format_gives_output_parsed(server: OpenAITestServer) -> None:
    # the seed's guardrail classifier: a JSON-schema text.format, read as output_parsed
    verdict = {"moderationRationale": "Insults the user.", "moderationCategory": "OFFENSIVE"}
    server.push_to(RESPONSES, Reply(tokens=[json.dumps(verdict)]))
    fmt = {"type": "json_schema", "name": "output_format", "strict": True, "schema": {
        "type": "object", "properties": {"moderationRationale": {"type": "string"},
                                         "moderationCategory": {"type": "string"}},
        "required": ["moderationRationale", "moderationCategory"],
        "additionalProperties": False}}
    async with upstream_app(server) as (_, client):
        response = await client.post("/api/responses", json={
            "input": [{"role": "user", "content": "classify: you idiot"}],
            "text": {"format": fmt}})
    assert response.status_code == 200, response.text
    assert response.json()["output_parsed"] == verdict
    # a body without a model gets responses_model
    assert server.requests_to(RESPONSES)[0].json["model"] == "gpt-4.1-mini"


async def test_output_parsed_is_null_when_the_text_is_not_json(
        server: OpenAITestServer) -> None:
    server.push_to(RESPONSES, Reply(text="not json"))
    async with upstream_app(server, upstream={"responses_model": "gpt-4o"}) as (_, client):
        response = await client.post("/api/responses", json={
            "input": "x", "text": {"format": {"type": "json_schema", "name": "f",
                                              "schema": {"type": "object"}}}})
    assert response.json()["output_parsed"] is None
    assert response.json()["output_text"] == "not json"
    assert server.requests_to(RESPONSES)[0].json["model"] == "gpt-4o"


FLUSH = pytest.mark.parametrize("flush_ms", [0, 1.0, 20.0])


@FLUSH
async def test_stream_is_relayed_event_by_event(server: OpenAITestServer,
                                                flush_ms: float) -> None:
    tokens = [f"w{i} " for i in range(30)]
    server.push_to(RESPONSES, Reply(tokens=tokens, tool_calls=[
        {"id": "call_a", "name": "lookup", "arguments": {"q": "tokyo"}}]))
    async with upstream_app(server, upstream={"stream_flush_ms": flush_ms}) as (_, client), \
            client.stream("POST", "/api/responses", json={
                "model": "gpt-4o-mini", "input": "hi", "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = (await response.aread()).decode()
    got = events(raw)
    kinds = [k for k, _ in got]
    assert kinds == (TEXT_EVENTS + ["response.output_text.delta"] * 30 + TEXT_END + [
        "response.output_item.added", *["response.function_call_arguments.delta"] * 4,
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed"])
    # intact: each event's `type` is its SSE event name, sequence numbers run unbroken
    assert all(data["type"] == kind for kind, data in got)
    assert [data["sequence_number"] for _, data in got] == list(range(len(got)))
    deltas = "".join(d["delta"] for k, d in got if k == "response.output_text.delta")
    assert deltas == "".join(tokens)
    completed = got[-1][1]["response"]
    assert completed["output"][1]["type"] == "function_call"
    assert json.loads(completed["output"][1]["arguments"]) == {"q": "tokyo"}
    assert server.streams[0].finished and not server.streams[0].client_closed


@FLUSH
async def test_client_disconnect_closes_the_upstream_stream(server: OpenAITestServer,
                                                            flush_ms: float) -> None:
    # the two deltas reach the client while the upstream stalls: nothing waits for more
    server.push_to(RESPONSES, Reply(tokens=["a ", "b ", "c "], after=2, stall=math.inf))
    async with upstream_app(server, upstream={"stream_flush_ms": flush_ms}) as (_, client):
        async with client.stream("POST", "/api/responses", json={
                "model": "gpt-4o-mini", "input": "hi", "stream": True}) as response:
            seen = ""
            async for text in response.aiter_text():
                seen += text
                if seen.count("response.output_text.delta\n") >= 2:
                    break
        # the client hung up mid-stream: the test server sees its request closed
        await server.await_until(lambda: bool(server.streams)
                                 and server.streams[0].ended_at is not None)
    assert server.streams[0].client_closed
    assert not server.streams[0].finished


@FLUSH
async def test_broken_stream_ends_with_an_error_event(server: OpenAITestServer,
                                                      flush_ms: float) -> None:
    server.push_to(RESPONSES, Reply(tokens=["a ", "b ", "c "], drop_after=2))
    async with upstream_app(server, upstream={"stream_flush_ms": flush_ms}) as (_, client):
        response = await client.post("/api/responses", json={
            "model": "gpt-4o-mini", "input": "hi", "stream": True})
    got = events(response.text)
    assert [k for k, _ in got] == TEXT_EVENTS + ["response.output_text.delta"] * 2 + [
        "error"]
    assert got[-1][1]["type"] == "error"
    assert got[-1][1]["code"] == "provider_protocol_error"


async def test_upstream_error_event_is_passed_through(server: OpenAITestServer) -> None:
    server.push_to(RESPONSES, Reply(tokens=["a ", "b "], after=1, error="overloaded",
                                    error_code="server_error"))
    async with upstream_app(server) as (_, client):
        response = await client.post("/api/responses", json={
            "model": "gpt-4o-mini", "input": "hi", "stream": True})
    got = events(response.text)
    assert got[-1] == ("error", {"type": "error", "code": "server_error",
                                 "message": "overloaded", "param": None,
                                 "sequence_number": len(got) - 1})


async def test_slow_stream_arrives_whole(server: OpenAITestServer) -> None:
    server.push_to(RESPONSES, Reply(tokens=["x "] * 5, delay=0.05))
    async with upstream_app(server) as (_, client):
        response = await client.post("/api/responses", json={
            "model": "gpt-4o-mini", "input": "hi", "stream": True})
    got = events(response.text)
    assert got[-1][0] == "response.completed"
    assert "".join(d["delta"] for k, d in got if k.endswith("text.delta")) == "x " * 5


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_errors_before_the_reply_keep_their_status(
        server: OpenAITestServer, stream: bool) -> None:
    async with upstream_app(server) as (_, client):
        unknown = await client.post("/api/responses", json={
            "model": "gpt-9", "input": "hi", "stream": stream})
        server.push_to(RESPONSES, Reply(status=503, error="The server is overloaded"))
        busy = await client.post("/api/responses", json={
            "model": "gpt-4o-mini", "input": "hi", "stream": stream})
    assert unknown.status_code == 400
    assert unknown.json()["detail"] == "The requested model 'gpt-9' does not exist."
    assert unknown.json()["upstream_code"] == "model_not_found"
    assert busy.status_code == 503
    assert busy.json() == {"detail": "The server is overloaded", "code": "upstream_error",
                           "provider": "openai", "upstream_status": 503,
                           "upstream_code": None}


async def test_a_body_without_input_is_422(server: OpenAITestServer) -> None:
    async with upstream_app(server) as (_, client):
        missing = await client.post("/api/responses", json={"model": "gpt-4o-mini"})
        not_object = await client.post("/api/responses", json=["x"])
    assert missing.status_code == 422
    assert missing.json()["code"] == "invalid_responses_request"
    assert not_object.status_code == 422
    assert server.requests_to(RESPONSES) == []


async def test_no_api_key(server: OpenAITestServer) -> None:
    async with upstream_app(server, api_key=None) as (_, client):
        response = await client.post("/api/responses", json={"input": "hi",
                                                              "stream": True})
    assert response.status_code == 500
    assert response.json()["detail"] == "Missing OPENAI_API_KEY"

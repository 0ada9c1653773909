"""POST /api/agent/run: one server-side turn over the Responses API with parallel tool
calls run through the kernel's tool safety stage, against the OpenAI test server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from armillary import tool
from armillary.testing.checks import PII, PatternCheck
from tests.plugins.realtime.upstream_harness import API_KEY, upstream_app
from tests.support.openai_server import OpenAITestServer, Reply

RESPONSES = "/v1/responses"
MODELS = ("gpt-4o-mini", "gpt-4.1-mini")


class Point(BaseModel):
    x: float
    when: datetime


class Rendezvous:
    """Two tool calls that each wait for the other to start: they only both finish when
    they run at the same time (one after the other, the first times out)."""

    def __init__(self) -> None:
        self.started = 0
        self.both = asyncio.Event()

    async def meet(self) -> None:
        self.started += 1
        if self.started == 2:
            self.both.set()
        await asyncio.wait_for(self.both.wait(), 5)


def tools_for(meeting: Rendezvous) -> list:
    @tool
    async def weather(city: str) -> dict:
        """The weather in a city."""
        await meeting.meet()
        return {"city": city, "sky": "clear"}

    @tool
    async def stock(sku: str) -> int:
        """How many of a product are in stock."""
        await meeting.meet()
        return 7

    return [weather, stock]


@pytest.fixture
def server():
    with OpenAITestServer(api_key=API_KEY, models=MODELS) as s:
        yield s


async def test_parallel_tool_calls_run_together(server: OpenAITestServer) -> None:
    server.push_to(RESPONSES, Reply(text="Checking both.", tool_calls=[
        {"id": "call_w", "name": "weather", "arguments": {"city": "Oslo"}},
        {"id": "call_s", "name": "stock", "arguments": {"sku": "A-1"}}]))
    async with upstream_app(server, tools=tools_for(Rendezvous())) as (_, client):
        response = await client.post("/api/agent/run", json={
            "messages": [{"role": "user", "content": "Weather in Oslo and stock of A-1?"}],
            "instructions": "Use the tools."})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"].startswith("resp_")
    assert body["segments"] == ["Checking both."] and body["output_text"] == "Checking both."
    assert body["tool_calls"] == [
        {"call_id": "call_w", "name": "weather", "arguments": {"city": "Oslo"}, "ok": True,
         "output": {"city": "Oslo", "sky": "clear"}, "error": None},
        {"call_id": "call_s", "name": "stock", "arguments": {"sku": "A-1"}, "ok": True,
         "output": 7, "error": None}]
    sent = server.requests_to(RESPONSES)[0].json
    assert sent["model"] == "gpt-4.1-mini"
    assert sent["input"] == [{"role": "user", "content": "Weather in Oslo and stock of A-1?"}]
    assert sent["instructions"] == "Use the tools."
    assert sent["parallel_tool_calls"] is True
    assert {t["name"] for t in sent["tools"]} == {"weather", "stock"}
    weather = next(t for t in sent["tools"] if t["name"] == "weather")
    assert weather["type"] == "function"
    assert weather["parameters"]["properties"]["city"]["type"] == "string"


async def test_tool_safety_stage_blocks_a_call(server: OpenAITestServer) -> None:
    meeting = Rendezvous()
    meeting.started = 1  # the blocked call never starts: let the other finish alone
    block = PatternCheck({"forbidden": r"Pyongyang"}, name="geo", block=True,
                         stages=frozenset({"tool"}))
    server.push_to(RESPONSES, Reply(tool_calls=[
        {"id": "call_1", "name": "weather", "arguments": {"city": "Pyongyang"}},
        {"id": "call_2", "name": "stock", "arguments": {"sku": "B"}},
        {"id": "call_3", "name": "rm_rf", "arguments": {}}]))
    async with upstream_app(server, tools=tools_for(meeting), checks=[block]) as (_, client):
        response = await client.post("/api/agent/run", json={
            "messages": [{"role": "user", "content": "go"}]})
    calls = response.json()["tool_calls"]
    assert calls[0]["ok"] is False and calls[0]["error"]["code"] == "tool_blocked"
    assert calls[1]["ok"] is True and calls[1]["output"] == 7
    assert calls[2]["error"]["code"] == "tool_not_found"
    assert response.json()["segments"] == []


async def test_input_and_output_checks(server: OpenAITestServer) -> None:
    server.push_to(RESPONSES, Reply(text="Mail carol@example.org now."))
    async with upstream_app(server, checks=[PII()]) as (_, client):
        response = await client.post("/api/agent/run", json={
            "messages": [{"role": "system", "content": "be nice"},
                         {"role": "user", "content": "I am bob@example.com"},
                         {"role": "assistant", "content": "Hi"},
                         {"role": "user", "content": "ssn 123-45-6789"}]})
    assert response.json()["output_text"] == "Mail [email] now."
    sent = server.requests_to(RESPONSES)[0].json["input"]
    assert sent[-1] == {"role": "user", "content": "ssn [ssn]"}
    assert "tools" not in server.requests_to(RESPONSES)[0].json


async def test_a_blocked_input_is_an_error_and_no_upstream_call(
        server: OpenAITestServer) -> None:
    async with upstream_app(server, checks=[PII(block=True)]) as (_, client):
        response = await client.post("/api/agent/run", json={
            "messages": [{"role": "user", "content": "ssn 123-45-6789"}]})
    assert response.status_code == 400
    assert response.json()["code"] == "input_blocked"
    assert server.requests_to(RESPONSES) == []


async def test_bad_requests(server: OpenAITestServer) -> None:
    async with upstream_app(server, tools=tools_for(Rendezvous())) as (_, client):
        empty = await client.post("/api/agent/run", json={"messages": []})
        unknown = await client.post("/api/agent/run", json={
            "messages": [{"role": "user", "content": "x"}], "tools": ["nope"]})
    assert empty.status_code == 422 and empty.json()["code"] == "validation_error"
    assert unknown.status_code == 422 and unknown.json()["code"] == "tool_not_found"


async def test_upstream_error_status(server: OpenAITestServer) -> None:
    server.push_to(RESPONSES, Reply(status=429, error="slow down"))
    async with upstream_app(server) as (_, client):
        response = await client.post("/api/agent/run", json={
            "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 429 and response.json()["detail"] == "slow down"


async def test_tool_results_are_json_whatever_the_tool_returns(
        server: OpenAITestServer) -> None:
    @tool
    def odd(n: int) -> Point:
        """Returns a model with a NaN in it."""
        return Point(x=float("nan"), when=datetime(2026, 1, 2, tzinfo=UTC))

    server.push_to(RESPONSES, Reply(tool_calls=[
        {"id": "c", "name": "odd", "arguments": {"n": 1}}]))
    async with upstream_app(server, tools=[odd]) as (_, client):
        response = await client.post("/api/agent/run", json={
            "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200, response.text
    assert response.json()["tool_calls"][0]["output"] == {
        "x": None, "when": "2026-01-02T00:00:00Z"}


async def test_a_later_turn_gives_the_model_the_earlier_calls_and_results(
        server: OpenAITestServer) -> None:
    """§19's stable interface over turns: a turn's `tool_calls` go back in the next
    turn's `messages` as `function_call` / `function_call_output` items, and the model
    sees them as Responses `input` items."""
    meeting = Rendezvous()
    meeting.started = 1  # one call only: do not wait for a second
    server.push_to(RESPONSES, Reply(tool_calls=[
        {"id": "call_w", "name": "weather", "arguments": {"city": "Oslo"}}]))
    server.push_to(RESPONSES, Reply(text="Clear skies in Oslo."))
    async with upstream_app(server, tools=tools_for(meeting)) as (_, client):
        question = {"role": "user", "content": "Weather in Oslo?"}
        first = await client.post("/api/agent/run", json={"messages": [question]})
        assert first.status_code == 200, first.text
        call = first.json()["tool_calls"][0]
        second = await client.post("/api/agent/run", json={"messages": [
            {"type": "message", **question},
            {"type": "function_call", "call_id": call["call_id"], "name": call["name"],
             "arguments": call["arguments"]},
            {"type": "function_call_output", "call_id": call["call_id"],
             "output": call["output"]}]})
        bad = await client.post("/api/agent/run", json={"messages": [
            {"type": "function_call_output", "output": "no call id"}]})
    assert second.status_code == 200, second.text
    assert second.json()["output_text"] == "Clear skies in Oslo."
    assert second.json()["tool_calls"] == []
    sent = server.requests_to(RESPONSES)[1].json["input"]
    assert sent == [
        {"type": "message", "role": "user", "content": "Weather in Oslo?"},
        {"type": "function_call", "call_id": "call_w", "name": "weather",
         "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": "call_w",
         "output": '{"city":"Oslo","sky":"clear"}'}]
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"

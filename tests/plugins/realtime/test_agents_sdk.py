"""SDK sessions (seed §20) through a real `armillary serve` on the Ollama test server:
create/message/transcript with the seed's bodies, a handoff (`transfer_to_<agent>`) as
the Agents SDK presents it, SSE deltas, and a client that leaves cancelling the turn."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from armillary.testing import ArmillaryServer
from tests.plugins.realtime.agents_harness import sse_events, write_config
from tests.support.ollama_server import OllamaTestServer, Reply


@pytest.fixture(scope="module")
def ollama() -> Iterator[OllamaTestServer]:
    with OllamaTestServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(ollama: OllamaTestServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("sdk")
    with ArmillaryServer(write_config(tmp, ollama.url), log_path=tmp / "serve.log") as s, \
            httpx.Client(base_url=s.url, timeout=15) as client:
        yield client


def tool_names(request: Any) -> list[str]:
    return [t["function"]["name"] for t in request.json.get("tools") or []]


def system_prompt(request: Any) -> str:
    messages = request.json["messages"]
    assert messages[0]["role"] == "system"
    return str(messages[0]["content"])


def test_create_is_idempotent_and_answers_the_seed_shape(server: httpx.Client) -> None:
    first = server.post("/api/sdk/session/create", json={
        "session_id": "s-create", "agent_name": "helper", "instructions": "Be brief."})
    again = server.post("/api/sdk/session/create", json={
        "session_id": "s-create", "agent_name": "other", "instructions": "Be long."})
    fresh = server.post("/api/sdk/session/create", json={
        "agent_name": "helper", "instructions": "x", "model": "deepseek-r1"})
    assert first.status_code == 200, first.text
    assert first.json() == {"session_id": "s-create", "agent_name": "helper",
                            "model": "llama3.2", "scenario_id": None}
    assert again.json() == first.json()  # the existing session, as it was created
    assert fresh.json()["session_id"].startswith("sess_")
    assert fresh.json()["model"] == "deepseek-r1"


def test_create_validates_a_scenario_agent(server: httpx.Client) -> None:
    bad_agent = server.post("/api/sdk/session/create", json={
        "agent_name": "ghost", "instructions": "", "scenario_id": "retail"})
    bad_scenario = server.post("/api/sdk/session/create", json={
        "agent_name": "x", "instructions": "", "scenario_id": "bank"})
    assert (bad_agent.status_code, bad_agent.json()["code"]) == (404, "agent_not_found")
    assert (bad_scenario.status_code, bad_scenario.json()["code"]) == (
        404, "scenario_not_found")


def test_a_message_runs_the_agent_with_its_tools(server: httpx.Client,
                                                 ollama: OllamaTestServer) -> None:
    server.post("/api/sdk/session/create", json={
        "session_id": "s-tools", "agent_name": "helper", "instructions": "Use tools."})
    ollama.push(Reply(tool_calls=[{"name": "calculator",
                                   "arguments": {"expression": "2 ** 10"}}]),
                "It is 1024.")
    reply = server.post("/api/sdk/session/message", json={
        "session_id": "s-tools", "user_input": "what is 2^10?"})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"final_output": "It is 1024.", "new_items_len": 3,
                            "tool_calls": ["calculator"], "last_agent": "helper",
                            "session_id": "s-tools"}
    first, second = ollama.chat_requests[-2:]
    assert system_prompt(first) == "Use tools."
    assert "calculator" in tool_names(first)  # sdk_tools unset: every tool
    tool_result = second.json["messages"][-1]
    assert tool_result["role"] == "tool"
    assert json.loads(tool_result["content"]) == {"expression": "2 ** 10", "result": 1024}


def test_handoff_in_an_sdk_session(server: httpx.Client, ollama: OllamaTestServer) -> None:
    created = server.post("/api/sdk/session/create", json={
        "session_id": "s-handoff", "agent_name": "supervisor", "instructions": "",
        "scenario_id": "retail"})
    assert created.status_code == 200, created.text
    ollama.push(
        Reply(tool_calls=[{"name": "transfer_to_returns", "arguments": {}}]),
        Reply(tool_calls=[{"name": "calculator", "arguments": {"expression": "19.99 * 2"}}]),
        "Your refund of 39.98 is on its way.")
    before = len(ollama.chat_requests)
    reply = server.post("/api/sdk/session/message", json={
        "session_id": "s-handoff", "user_input": "Both mugs were broken, refund please"})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"final_output": "Your refund of 39.98 is on its way.",
                            "new_items_len": 5,
                            "tool_calls": ["transfer_to_returns", "calculator"],
                            "last_agent": "returns", "session_id": "s-handoff"}
    # what the model server saw: the supervisor with its tools and handoffs, then the
    # returns agent with its own, the handoff's result in the history
    supervisor, returns, final = ollama.chat_requests[before:]
    assert system_prompt(supervisor) == "You greet customers and route them."
    assert tool_names(supervisor) == ["current_time", "transfer_to_returns",
                                      "transfer_to_sales"]
    transfer = next(t for t in supervisor.json["tools"]
                    if t["function"]["name"] == "transfer_to_returns")
    assert "Returns, refunds and exchanges" in transfer["function"]["description"]
    assert system_prompt(returns) == "You handle returns and refunds."
    assert tool_names(returns) == ["calculator", "transfer_to_supervisor"]
    assert returns.json["messages"][-1]["role"] == "tool"
    assert json.loads(returns.json["messages"][-1]["content"]) == {"assistant": "returns"}
    assert json.loads(final.json["messages"][-1]["content"])["result"] == 39.98

    # the next message starts with the agent that spoke last
    ollama.push("Anything else about your return?")
    again = server.post("/api/sdk/session/message", json={
        "session_id": "s-handoff", "user_input": "thanks"})
    assert again.json()["last_agent"] == "returns"
    assert system_prompt(ollama.chat_requests[-1]) == "You handle returns and refunds."
    history = ollama.chat_requests[-1].json["messages"]
    assert [m["role"] for m in history[1:]] == [
        "user", "assistant", "tool", "assistant", "tool", "assistant", "user"]

    transcript = server.get("/api/sdk/session/transcript",
                            params={"session_id": "s-handoff"}).json()
    assert transcript["session_id"] == "s-handoff"
    assert transcript["length"] == len(transcript["items"]) == 8
    items = transcript["items"]
    assert items[0] == {"type": "message", "role": "user",
                        "content": "Both mugs were broken, refund please"}
    assert (items[1]["type"], items[1]["name"], items[1]["agent"]) == (
        "function_call", "transfer_to_returns", "supervisor")
    assert items[2]["type"] == "function_call_output"
    assert items[2]["call_id"] == items[1]["call_id"]
    assert (items[3]["name"], json.loads(items[3]["arguments"]), items[3]["agent"]) == (
        "calculator", {"expression": "19.99 * 2"}, "returns")
    assert items[5] == {"type": "message", "role": "assistant", "agent": "returns",
                        "content": "Your refund of 39.98 is on its way."}
    assert items[6]["content"] == "thanks"


def test_a_per_turn_agent_override(server: httpx.Client, ollama: OllamaTestServer) -> None:
    server.post("/api/sdk/session/create", json={
        "session_id": "s-override", "agent_name": "helper", "instructions": "Default."})
    ollama.push("ok")
    reply = server.post("/api/sdk/session/message", json={
        "session_id": "s-override", "user_input": "hi",
        "agent": {"name": "pirate", "instructions": "Talk like a pirate.",
                  "model": "deepseek-r1"}})
    assert reply.json()["last_agent"] == "pirate"
    sent = ollama.chat_requests[-1].json
    assert (sent["model"], sent["messages"][0]["content"]) == (
        "deepseek-r1", "Talk like a pirate.")


def test_message_errors_are_coded(server: httpx.Client) -> None:
    server.post("/api/sdk/session/create", json={"session_id": "s-err", "agent_name": "a",
                                                 "instructions": ""})
    empty = server.post("/api/sdk/session/message", json={"session_id": "s-err",
                                                          "user_input": "   "})
    unknown = server.post("/api/sdk/session/message", json={"session_id": "nope",
                                                            "user_input": "hi"})
    missing = server.get("/api/sdk/session/transcript", params={"session_id": "nope"})
    assert (empty.status_code, empty.json()["code"]) == (400, "empty_input")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "session_not_found")
    assert (missing.status_code, missing.json()["code"]) == (404, "session_not_found")


def test_a_provider_failure_is_reported_with_its_code(server: httpx.Client,
                                                      ollama: OllamaTestServer) -> None:
    server.post("/api/sdk/session/create", json={
        "session_id": "s-model", "agent_name": "a", "instructions": "", "model": "missing"})
    reply = server.post("/api/sdk/session/message", json={"session_id": "s-model",
                                                          "user_input": "hi"})
    assert (reply.status_code, reply.json()["code"]) == (404, "model_not_found")
    assert reply.json()["run_id"].startswith("run_")


def test_message_streams_deltas_as_sse(server: httpx.Client, ollama: OllamaTestServer) -> None:
    server.post("/api/sdk/session/create", json={
        "session_id": "s-stream", "agent_name": "supervisor", "instructions": "",
        "scenario_id": "retail"})
    ollama.push(Reply(tool_calls=[{"name": "transfer_to_sales", "arguments": {}}]),
                Reply(tokens=["We ", "have ", "a ", "discount."], delay=0.06))
    reply = server.post("/api/sdk/session/message", json={
        "session_id": "s-stream", "user_input": "I want to buy", "stream": True})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    stream = sse_events(reply.text)
    names = [name for name, _ in stream]
    assert names[0] == "start" and names[-1] == "done"
    assert stream[0][1]["agent"] == "supervisor"
    assert "agent_switch" in names and "tool_call" in names
    switch = dict(stream)["agent_switch"]
    assert (switch["from_agent"], switch["to_agent"]) == ("supervisor", "sales")
    deltas = [data for name, data in stream if name == "delta"]
    assert len(deltas) >= 2  # streamed as it came, not in one piece
    assert "".join(d["delta"] for d in deltas) == "We have a discount."
    assert {d["agent"] for d in deltas} == {"sales"}
    assert stream[-1][1]["final_output"] == "We have a discount."
    assert stream[-1][1]["tool_calls"] == ["transfer_to_sales"]


def test_a_client_that_leaves_a_streamed_message_cancels_the_model_stream(
        server: httpx.Client, ollama: OllamaTestServer) -> None:
    server.post("/api/sdk/session/create", json={"session_id": "s-gone", "agent_name": "a",
                                                 "instructions": ""})
    ollama.push(Reply(tokens=[f"t{i} " for i in range(200)], delay=0.05))
    with server.stream("POST", "/api/sdk/session/message", json={
            "session_id": "s-gone", "user_input": "talk", "stream": True}) as reply:
        for line in reply.iter_lines():
            if line.startswith("event: delta"):
                break
    assert ollama.wait_until(lambda: ollama.streams[-1].client_closed, timeout=5)
    assert ollama.streams[-1].lines_sent < 200
    # the turn ended; the session takes the next message at once
    ollama.push("back")
    after = server.post("/api/sdk/session/message", json={"session_id": "s-gone",
                                                          "user_input": "again"})
    assert after.json()["final_output"] == "back"


def test_a_client_that_leaves_a_whole_message_cancels_the_model_call(
        server: httpx.Client, ollama: OllamaTestServer) -> None:
    server.post("/api/sdk/session/create", json={"session_id": "s-left", "agent_name": "a",
                                                 "instructions": ""})
    ollama.push(Reply(text="too late", first_delay=30))
    with pytest.raises(httpx.ReadTimeout):
        server.post("/api/sdk/session/message", json={
            "session_id": "s-left", "user_input": "slow one"}, timeout=1.0)
    assert ollama.wait_until(lambda: ollama.replies[-1].client_closed, timeout=5)
    transcript = server.get("/api/sdk/session/transcript",
                            params={"session_id": "s-left"}).json()
    assert [i["content"] for i in transcript["items"]] == ["slow one"]  # no reply kept


def test_one_handoff_per_step_and_a_step_limit(server: httpx.Client,
                                               ollama: OllamaTestServer) -> None:
    server.post("/api/sdk/session/create", json={
        "session_id": "s-two", "agent_name": "supervisor", "instructions": "",
        "scenario_id": "retail"})
    ollama.push(Reply(tool_calls=[{"name": "transfer_to_sales", "arguments": {}},
                                  {"name": "transfer_to_returns", "arguments": {}}]),
                "Sales here.")
    reply = server.post("/api/sdk/session/message", json={"session_id": "s-two",
                                                          "user_input": "both?"})
    assert reply.json()["last_agent"] == "sales"
    results = [m for m in ollama.chat_requests[-1].json["messages"] if m["role"] == "tool"]
    assert json.loads(results[0]["content"]) == {"assistant": "sales"}
    assert results[1]["content"].startswith("error (multiple_handoffs)")

    # a model that never stops calling tools ends at sdk_max_steps (10)
    server.post("/api/sdk/session/create", json={"session_id": "s-loop", "agent_name": "a",
                                                 "instructions": ""})
    loop = Reply(tool_calls=[{"name": "current_time", "arguments": {}}])
    ollama.push(*[loop] * 10)
    before = len(ollama.chat_requests)
    stuck = server.post("/api/sdk/session/message", json={"session_id": "s-loop",
                                                          "user_input": "time?"})
    assert (stuck.status_code, stuck.json()["code"]) == (500, "max_steps_exceeded")
    assert len(ollama.chat_requests) - before == 10

"""Scenarios, tools/execute, context/snapshot and orchestrate with the seed's bodies,
through a real `armillary serve` with the tools, sse, ollama and realtime plugins."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from armillary.testing import ArmillaryServer
from tests.plugins.realtime.agents_harness import write_config
from tests.support.ollama_server import OllamaTestServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("realtime")
    with OllamaTestServer() as ollama, ArmillaryServer(
            write_config(tmp, ollama.url), log_path=tmp / "serve.log") as served, \
            httpx.Client(base_url=served.url, timeout=10) as client:
        yield client


# --- scenarios -----------------------------------------------------------------------

def test_scenarios_lists_every_scenario_default_first(server: httpx.Client) -> None:
    reply = server.get("/api/scenarios")
    assert reply.status_code == 200
    body = reply.json()
    assert body["default_scenario"] == "retail"
    assert [(s["id"], s["name"], s["default_root"], s["agents"]) for s in body["scenarios"]] == [
        ("retail", "Retail", "supervisor", ["supervisor", "returns", "sales"]),
        ("haiku", "haiku", "poet", ["poet"])]


def test_scenario_detail_renders_agents_as_the_realtime_sdk_takes_them(
        server: httpx.Client) -> None:
    body = server.get("/api/scenarios/retail").json()
    assert body["default_root"] == "supervisor"
    supervisor, returns, sales = body["agents"]
    assert supervisor["name"] == "supervisor"
    assert supervisor["instructions"] == "You greet customers and route them."
    assert supervisor["voice"] == "sage"
    assert supervisor["handoffDescription"] == "Greets and routes customers"
    assert supervisor["handoffs"] == ["returns", "sales"]
    # the kernel's tool, as a JSON-schema function spec
    assert supervisor["tools"] == [{
        "type": "function", "name": "current_time",
        "description": supervisor["tools"][0]["description"],
        "parameters": {"type": "object", "properties": {
            "timezone": {"type": "string", "default": "UTC"}}}}]
    assert "time zone" in supervisor["tools"][0]["description"]
    assert [t["name"] for t in returns["tools"]] == ["calculator"]
    assert returns["tools"][0]["parameters"]["required"] == ["expression"]
    assert (sales["tools"], sales["handoffs"], sales["voice"]) == ([], [], None)


def test_an_unknown_scenario_is_a_404_in_the_error_model(server: httpx.Client) -> None:
    reply = server.get("/api/scenarios/nope")
    assert reply.status_code == 404
    assert reply.json()["code"] == "scenario_not_found"
    assert "retail" in reply.json()["detail"]


# --- tools/execute -------------------------------------------------------------------

def test_tools_execute_runs_a_kernel_tool(server: httpx.Client) -> None:
    reply = server.post("/api/tools/execute", json={
        "name": "calculator", "arguments": {"expression": "6 * 7"}, "call_id": "call_1"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["name"], body["ok"], body["error"], body["call_id"]) == (
        "calculator", True, None, "call_1")
    assert body["result"] == {"expression": "6 * 7", "result": 42}
    assert body["duration_ms"] >= 0


def test_tools_execute_unknown_tool_is_a_coded_404(server: httpx.Client) -> None:
    reply = server.post("/api/tools/execute", json={"name": "launch_rockets"})
    assert reply.status_code == 404
    assert reply.json()["code"] == "tool_not_found"
    assert "calculator" in reply.json()["detail"]


def test_tools_execute_bad_arguments_are_a_coded_422(server: httpx.Client) -> None:
    missing = server.post("/api/tools/execute", json={"name": "calculator", "arguments": {}})
    wrong = server.post("/api/tools/execute", json={
        "name": "calculator", "arguments": {"expression": ["not", "a", "string"]}})
    for reply in (missing, wrong):
        assert reply.status_code == 422
        assert reply.json()["code"] == "invalid_tool_arguments"
        assert "expression" in reply.json()["detail"]


def test_a_tool_that_fails_is_a_tool_result_with_its_error(server: httpx.Client) -> None:
    reply = server.post("/api/tools/execute", json={
        "name": "calculator", "arguments": {"expression": "1 / 0"}})
    assert reply.status_code == 200
    body = reply.json()
    assert body["ok"] is False and body["result"] is None
    assert "division by zero" in body["error"]["detail"]
    assert body["error"]["code"]


def test_tools_execute_for_a_scenario_agent_allows_only_its_tools(
        server: httpx.Client) -> None:
    allowed = server.post("/api/tools/execute", json={
        "name": "calculator", "arguments": {"expression": "1+1"}, "scenario_id": "retail",
        "agent": "returns"})
    refused = server.post("/api/tools/execute", json={
        "name": "calculator", "arguments": {"expression": "1+1"}, "scenario_id": "retail",
        "agent": "supervisor"})
    unknown = server.post("/api/tools/execute", json={
        "name": "calculator", "arguments": {}, "scenario_id": "retail", "agent": "ghost"})
    assert allowed.json()["result"]["result"] == 2
    assert (refused.status_code, refused.json()["code"]) == (403, "tool_not_allowed")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "agent_not_found")


def test_tools_execute_refuses_unknown_fields(server: httpx.Client) -> None:
    reply = server.post("/api/tools/execute", json={"name": "calculator", "args": {}})
    assert reply.status_code == 422
    assert reply.json()["code"] == "validation_error"


# --- context/snapshot ----------------------------------------------------------------

def test_context_snapshot_assembles_the_ids_and_each_context_source(
        server: httpx.Client) -> None:
    reply = server.post("/api/context/snapshot", json={
        "page_id": "page-7", "user_id": "u-1", "project_id": "proj-3"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["ids"] == {"page_id": "page-7", "user_id": "u-1", "project_id": "proj-3"}
    assert [s["source"] for s in body["sections"]] == ["request", "current_time"]
    assert body["sections"][0]["content"] == "page id: page-7\nuser id: u-1\nproject id: proj-3"
    assert '"timezone": "UTC"' in body["sections"][1]["content"]
    assert body["context"].startswith("Context:\n[request]\npage id: page-7")
    assert "[current_time]" in body["context"]
    assert body["errors"] == []


# --- orchestrate ---------------------------------------------------------------------

def test_orchestrate_recommends_the_agent_the_user_asks_for(server: httpx.Client) -> None:
    reply = server.post("/api/orchestrate", json={
        "scenario_id": "retail", "current_agent": "supervisor",
        "user_message": "My blender arrived broken, I want a refund",
        "agent_message": "Hello! How can I help?"})
    assert reply.status_code == 200, reply.text
    decision = reply.json()
    assert decision["recommended_root"] == "returns"
    assert decision["switch"] is True
    assert decision["matched"] == ["broken", "refund"]
    assert "'refund'" in decision["reason"]
    assert set(decision["scores"]) == {"supervisor", "returns", "sales"}
    assert abs(sum(decision["scores"].values()) - 1) < 1e-3
    assert decision["scores"]["returns"] > decision["scores"]["supervisor"] \
        > decision["scores"]["sales"] == 0


def test_orchestrate_reads_the_last_messages_of_a_transcript(server: httpx.Client) -> None:
    decision = server.post("/api/orchestrate", json={
        "current_agent": "returns", "messages": [
            {"role": "user", "content": "I want a refund"},
            {"role": "assistant", "content": "Sure, refunds take a week."},
            {"role": "user", "content": "Also, what is the price of the new model?"}]}).json()
    assert decision["scenario_id"] == "retail"  # the default scenario
    assert decision["recommended_root"] == "sales"
    assert decision["matched"] == ["new", "price"]  # its keywords and description


def test_orchestrate_keeps_the_current_agent_without_a_signal(server: httpx.Client) -> None:
    decision = server.post("/api/orchestrate", json={
        "scenario_id": "retail", "current_agent": "returns",
        "user_message": "ok thanks"}).json()
    assert (decision["recommended_root"], decision["switch"]) == ("returns", False)
    assert "no signal" in decision["reason"]
    without_current = server.post("/api/orchestrate", json={
        "scenario_id": "retail", "user_message": "hmm"}).json()
    assert without_current["recommended_root"] == "supervisor"  # the default root


def test_orchestrate_validates_against_the_scenario(server: httpx.Client) -> None:
    unknown_scenario = server.post("/api/orchestrate", json={
        "scenario_id": "bank", "user_message": "hi"})
    unknown_agent = server.post("/api/orchestrate", json={
        "scenario_id": "retail", "current_agent": "poet", "user_message": "hi"})
    empty = server.post("/api/orchestrate", json={"scenario_id": "retail",
                                                 "user_message": "  "})
    assert (unknown_scenario.status_code, unknown_scenario.json()["code"]) == (
        404, "scenario_not_found")
    assert (unknown_agent.status_code, unknown_agent.json()["code"]) == (404, "agent_not_found")
    assert (empty.status_code, empty.json()["code"]) == (422, "empty_input")

"""SDK sessions are the kernel's conversations: with SQLite a restarted server keeps the
session, its transcript and its active agent. Two successive `armillary serve` processes
on one database file."""

from __future__ import annotations

from pathlib import Path

import httpx

from armillary.testing import ArmillaryServer
from tests.plugins.realtime.agents_harness import write_config
from tests.support.ollama_server import OllamaTestServer, Reply


def test_a_restarted_server_keeps_the_session_and_its_transcript(tmp_path: Path) -> None:
    script = [Reply(tool_calls=[{"name": "transfer_to_returns", "arguments": {}}]),
              "I can refund that.", "As I said, a refund."]
    with OllamaTestServer(script) as ollama:
        config = write_config(tmp_path, ollama.url, store="sqlite:///realtime.db")
        with ArmillaryServer(config, cwd=tmp_path, log_path=tmp_path / "first.log") as first:
            httpx.post(first.url + "/api/sdk/session/create", json={
                "session_id": "s-kept", "agent_name": "supervisor", "instructions": "",
                "scenario_id": "retail"}, timeout=10)
            said = httpx.post(first.url + "/api/sdk/session/message", json={
                "session_id": "s-kept", "user_input": "refund my order"}, timeout=10)
            before = httpx.get(first.url + "/api/sdk/session/transcript",
                               params={"session_id": "s-kept"}).json()
        assert said.json()["last_agent"] == "returns"
        assert before["length"] == 4

        with ArmillaryServer(config, cwd=tmp_path, log_path=tmp_path / "second.log") as second:
            after = httpx.get(second.url + "/api/sdk/session/transcript",
                              params={"session_id": "s-kept"})
            created = httpx.post(second.url + "/api/sdk/session/create", json={
                "session_id": "s-kept", "agent_name": "sales", "instructions": ""})
            reply = httpx.post(second.url + "/api/sdk/session/message", json={
                "session_id": "s-kept", "user_input": "what did you say?"}, timeout=10)

    assert after.status_code == 200, after.text
    assert after.json() == before
    # idempotent across the restart: the session as it was created
    assert (created.json()["agent_name"], created.json()["scenario_id"]) == (
        "supervisor", "retail")
    assert reply.json()["final_output"] == "As I said, a refund."
    assert reply.json()["last_agent"] == "returns"  # where the first process left off
    sent = ollama.chat_requests[-1].json["messages"]
    assert sent[0]["content"] == "You handle returns and refunds."
    assert [(m["role"], m["content"]) for m in sent[1:2] + sent[-2:]] == [
        ("user", "refund my order"), ("assistant", "I can refund that."),
        ("user", "what did you say?")]

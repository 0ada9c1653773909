"""The handoff strategy is provider-neutral: the same SDK session handoff on the `openai`
provider (chat completions, tool calls streamed in fragments), against the OpenAI test
server, through a real `armillary serve`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from armillary.testing import ArmillaryServer
from tests.plugins.realtime.agents_harness import SCENARIOS
from tests.support.openai_server import OpenAITestServer, Reply


def test_a_handoff_in_an_sdk_session_on_the_openai_provider(tmp_path: Path) -> None:
    script = [Reply(tool_calls=[{"id": "call_h", "name": "transfer_to_returns",
                                 "arguments": {}}]),
              Reply(tool_calls=[{"id": "call_c", "name": "calculator",
                                 "arguments": {"expression": "12.5 * 4"}}], fragment_size=3),
              "That is 50 back to you."]
    with OpenAITestServer(script=script) as openai:
        config = tmp_path / "plugins.toml"
        config.write_text(f"""
[kernel]
enable = ["openai", "tools", "realtime"]
store = "memory://"

[plugins.openai]
base_url = "{openai.url}/v1"
api_key = "sk-test"
model = "gpt-4o-mini"
{SCENARIOS}
""")
        with ArmillaryServer(config, log_path=tmp_path / "serve.log") as server, \
                httpx.Client(base_url=server.url, timeout=15) as client:
            client.post("/api/sdk/session/create", json={
                "session_id": "s-oa", "agent_name": "supervisor", "instructions": "",
                "scenario_id": "retail"})
            reply = client.post("/api/sdk/session/message", json={
                "session_id": "s-oa", "user_input": "refund 4 items at 12.50"})
        chats = [r for r in openai.requests if r.path == "/v1/chat/completions"]

    assert reply.status_code == 200, reply.text
    assert reply.json()["final_output"] == "That is 50 back to you."
    assert reply.json()["tool_calls"] == ["transfer_to_returns", "calculator"]
    assert reply.json()["last_agent"] == "returns"
    first, second, third = (c.json for c in chats)
    assert first["messages"][0] == {"role": "system",
                                    "content": "You greet customers and route them."}
    assert [t["function"]["name"] for t in first["tools"]] == [
        "current_time", "transfer_to_returns", "transfer_to_sales"]
    assert second["messages"][0]["content"] == "You handle returns and refunds."
    assert [t["function"]["name"] for t in second["tools"]] == [
        "calculator", "transfer_to_supervisor"]
    # the handoff went back as the tool result of the model's own call id
    assert second["messages"][-1]["role"] == "tool"
    assert second["messages"][-1]["tool_call_id"] == "call_h"
    assert json.loads(third["messages"][-1]["content"])["result"] == 50

"""The upstream routes in a real `armillary serve` (the realtime and openai plugins
from their entry points, plugins.toml, the key from the environment) against the OpenAI
test server over loopback."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import pytest

from armillary.testing import ArmillaryServer
from tests.support.openai_server import OpenAITestServer, Reply

KEY = "sk-serve-test"

CONFIG = """
[kernel]
enable = ["openai", "tools", "realtime"]
store = "memory://"

[plugins.openai]
base_url = "{url}/v1"
api_key = {{ "$env" = "RT_TEST_OPENAI_KEY" }}
model = "gpt-4o-mini"

[plugins.realtime]
default_scenario = "retail"

[plugins.realtime.upstream]
voice = "coral"
moderation_model = "omni-moderation-latest"
agent_model = "gpt-4o-mini"
agent_tools = ["calculator"]

[plugins.realtime.scenarios.retail]
default_root = "greeter"

[[plugins.realtime.scenarios.retail.agents]]
name = "greeter"
instructions = "Greet the customer."
handoffs = ["returns"]

[[plugins.realtime.scenarios.retail.agents]]
name = "returns"
instructions = "Handle returns."
"""


@pytest.fixture
def upstream():
    with OpenAITestServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def served(upstream: OpenAITestServer, tmp_path: Path):
    config = tmp_path / "plugins.toml"
    config.write_text(CONFIG.format(url=upstream.url))
    with ArmillaryServer(config, env={"RT_TEST_OPENAI_KEY": KEY},
                         log_path=tmp_path / "serve.log") as server:
        yield server


def test_routes_in_a_real_server(served: ArmillaryServer, upstream: OpenAITestServer) -> None:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        assert client.get("/api/health").json()["upstream"]["api_key"] is True
        session = client.get("/api/session").json()
        assert session["client_secret"]["value"].startswith("ek_")
        assert session["session"]["audio"]["output"]["voice"] == "coral"
        boot = client.get("/api/session2", params={"root_agent": "returns"}).json()
        assert [a["name"] for a in boot["initial_agents"]] == ["returns", "greeter"]
        assert boot["ephemeral_key"] == upstream.client_secrets[-1]
        assert client.get("/api/session2", params={"scenario_id": "x"}).status_code == 404

        upstream.push_to("/v1/responses", Reply(text="relayed through serve"))
        whole = client.post("/api/responses", json={"model": "gpt-4o", "input": "hi"})
        assert whole.json()["output_text"] == "relayed through serve"

        flagged = client.post("/api/moderate", json={"text": "kill"}).json()
        assert flagged["allowed"] is False and flagged["category"] == "VIOLENCE"

        upstream.push_to("/v1/responses", Reply(tool_calls=[
            {"id": "c1", "name": "calculator", "arguments": {"expression": "6*7"}},
            {"id": "c2", "name": "calculator", "arguments": {"expression": "1+1"}}]))
        run = client.post("/api/agent/run", json={
            "messages": [{"role": "user", "content": "compute"}]}).json()
        assert [c["ok"] for c in run["tool_calls"]] == [True, True], run
        assert [t["name"] for t in upstream.requests_to("/v1/responses")[-1].json[
            "tools"]] == ["calculator"]


def test_stream_relay_and_disconnect_in_a_real_server(
        served: ArmillaryServer, upstream: OpenAITestServer) -> None:
    upstream.push_to("/v1/responses", Reply(tokens=["a ", "b ", "c "]),
                     Reply(tokens=["x ", "y "], after=1, stall=math.inf))
    with httpx.Client(base_url=served.url, timeout=10) as client:
        whole = client.post("/api/responses", json={"model": "gpt-4o", "input": "hi",
                                                    "stream": True})
        kinds = [json.loads(line[6:])["type"] for line in whole.text.splitlines()
                 if line.startswith("data: ")]
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        assert kinds.count("response.output_text.delta") == 3
        with client.stream("POST", "/api/responses", json={
                "model": "gpt-4o", "input": "hi", "stream": True}) as response:
            for line in response.iter_lines():
                if "output_text.delta" in line:
                    break
    upstream.wait_until(lambda: len(upstream.streams) == 2
                        and upstream.streams[1].ended_at is not None)
    assert upstream.streams[1].client_closed


def test_missing_key_in_a_real_server(upstream: OpenAITestServer, tmp_path: Path) -> None:
    config = tmp_path / "plugins.toml"
    config.write_text(CONFIG.format(url=upstream.url).replace(
        'api_key = { "$env" = "RT_TEST_OPENAI_KEY" }\n', ""))
    with ArmillaryServer(config, log_path=tmp_path / "serve.log") as served, \
            httpx.Client(base_url=served.url, timeout=10) as client:
        response = client.get("/api/session")
    assert response.status_code == 500
    assert response.json() == {"detail": "Missing OPENAI_API_KEY", "code": "missing_api_key"}

"""A real `armillary serve` with the SQLite store: debates survive restarts, initialized
or finished, like any run."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from armillary.testing import ArmillaryServer
from tests.plugins.debate.served import Agents, config, instructions
from tests.support.ollama_server import OllamaTestServer


def write_config(tmp_path: Path, ollama: OllamaTestServer) -> Path:
    agents = "\n".join(f'[agents.{n}]\ninstructions = "{instructions(n)}"\n'
                       for n in ("alice", "bob", "carol"))
    path = tmp_path / "plugins.toml"
    path.write_text(f"""
[kernel]
enable = ["ollama", "tasks", "debate"]
store = "sqlite:///debates.db"

[plugins.ollama]
base_url = "{ollama.url}"
model = "llama3.2"

[plugins.debate]
heartbeat_interval = 5

{agents}
""")
    return path


def wait_finished(client: httpx.Client, debate_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while True:
        body: dict[str, object] = client.get(f"/debates/{debate_id}").json()
        if body["status"] not in ("queued", "running", "paused"):
            return body
        assert time.monotonic() < deadline, body["status"]
        time.sleep(0.05)


def test_debates_survive_restarts_of_a_real_server(tmp_path: Path) -> None:
    agents = Agents()
    with OllamaTestServer(respond=agents.respond) as ollama:
        path = write_config(tmp_path, ollama)
        with ArmillaryServer(path, cwd=tmp_path, log_path=tmp_path / "serve1.log") as server, \
                httpx.Client(base_url=server.url, timeout=10) as client:
            r = client.post("/debate/initialize", json=config(max_rounds=2))
            assert r.status_code == 200, r.text
            debate_id = r.json()["debate_id"]
        # initialized, then the server restarted: still there, and it starts
        with ArmillaryServer(path, cwd=tmp_path, log_path=tmp_path / "serve2.log") as server, \
                httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get(f"/debates/{debate_id}").json()["status"] == "initialized"
            r = client.post(f"/debate/{debate_id}/control", json={"action": "start"})
            assert r.status_code == 200, r.text
            body = wait_finished(client, debate_id)
            assert body["status"] == "completed"
        assert agents.speakers() == ["alice", "bob", "carol"] * 2
        with ArmillaryServer(path, cwd=tmp_path, log_path=tmp_path / "serve3.log") as server, \
                httpx.Client(base_url=server.url, timeout=10) as client:
            again = client.get(f"/debates/{debate_id}").json()
            assert again == body
            assert client.get(f"/v1/tasks/{debate_id}").json()["status"] == "completed"
            r = client.post(f"/debate/{debate_id}/control", json={"action": "start"})
            assert r.status_code == 409 and r.json()["code"] == "debate_already_started"

"""The Dvādaśa API from a real `armillary serve` subprocess (SQLite store, the ollama
plugin, the Ollama test server scripted per head): a session and its history survive a
restart, the prompt's run is a task, and plugins.toml configures the heads."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from websockets.sync.client import connect

from armillary.testing import ArmillaryServer
from tests.plugins.dvadasa.conftest import WITNESS, asked, head_text, who
from tests.support.ollama_server import OllamaTestServer, Reply


def respond(body: dict[str, object]) -> Reply:
    name = who(body)  # type: ignore[arg-type]
    return Reply(text="Witnessed." if name == WITNESS else head_text(name))


def write_config(tmp_path: Path, ollama: OllamaTestServer) -> Path:
    config = tmp_path / "plugins.toml"
    config.write_text(f"""
[kernel]
enable = ["ollama", "tasks", "dvadasa"]
store = "sqlite:///runs.db"

[plugins.ollama]
base_url = "{ollama.url}"
model = "llama3.2"

[plugins.dvadasa]
head_timeout_seconds = 20

[plugins.dvadasa.heads.risk]
model = "deepseek-r1"

[plugins.dvadasa.heads.referee]
name = "Referee"
instructions = "Judge fairly."
""")
    return config


def test_a_session_survives_a_restart_and_its_runs_are_tasks(tmp_path: Path) -> None:
    with OllamaTestServer(respond=respond) as ollama:
        config = write_config(tmp_path, ollama)
        log = tmp_path / "serve.log"
        with ArmillaryServer(config, log_path=log) as server:
            session = httpx.post(server.url + "/v1/sessions?user_id=ada").json()["session_id"]
            first = httpx.post(f"{server.url}/v1/sessions/{session}/prompt",
                               json={"prompt": "six times seven?", "use_all_heads": True},
                               timeout=30)
        assert first.status_code == 200, first.text
        heads = [c["head_id"] for c in first.json()["head_contributions"]]
        assert len(heads) == 13 and heads[-1] == "referee"
        models = {asked([r])[0]: json.loads(r.body or b"{}")["model"]
                  for r in ollama.chat_requests}
        assert models["risk"] == "deepseek-r1" and models[WITNESS] == "llama3.2"

        with ArmillaryServer(config, log_path=log) as server:
            detail = httpx.get(f"{server.url}/v1/sessions/{session}")
            task = httpx.get(f"{server.url}/v1/tasks/{first.json()['task_id']}")
            with connect(f"ws://127.0.0.1:{server.port}/v1/sessions/{session}/stream") as ws:
                ws.send(json.dumps({"prompt": "/head logic"}))
                messages = []
                while not messages or messages[-1]["type"] not in ("complete", "error"):
                    messages.append(json.loads(ws.recv(timeout=20)))
                # again: the question asked is still the original one, not "/head logic"
                ws.send(json.dumps({"prompt": "/head ethics"}))
                again = []
                while not again or again[-1]["type"] not in ("complete", "error"):
                    again.append(json.loads(ws.recv(timeout=20)))
            after = httpx.get(f"{server.url}/v1/sessions/{session}").json()
    assert detail.status_code == 200
    assert detail.json()["user_id"] == "ada"
    assert [h["prompt"] for h in detail.json()["history"]] == ["six times seven?"]
    assert task.json()["status"] == "completed"
    # `/head logic` alone asks about the session's last prompt, remembered across restart
    assert messages[-1]["type"] == "complete", messages
    assert messages[-1]["final_answer"] == head_text("logic")
    assert json.loads(ollama.chat_requests[-1].body or b"{}")["messages"][-1]["content"] == \
        "six times seven?"
    assert again[-1]["final_answer"] == head_text("ethics")
    assert [h["prompt"] for h in after["history"]] == ["six times seven?", "/head logic",
                                                       "/head ethics"]

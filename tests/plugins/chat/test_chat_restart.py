"""Chat memory lives in the store: with SQLite it survives a restart. Two successive real
`armillary serve` processes on one database file, talking to the Ollama test server."""

from __future__ import annotations

from pathlib import Path

import httpx

from armillary.testing import ArmillaryServer
from tests.support.ollama_server import OllamaTestServer, Reply


def write_config(tmp_path: Path, ollama_url: str, *, store: str) -> Path:
    config = tmp_path / "plugins.toml"
    config.write_text(f"""
[kernel]
enable = ["ollama", "chat", "agents"]
store = "{store}"

[plugins.ollama]
base_url = "{ollama_url}"
model = "llama3.2"

[plugins.chat]
memory_max_turns = 4
""")
    return config


def test_a_restarted_server_remembers_the_conversation_and_sends_it_as_history(
        tmp_path: Path) -> None:
    script = ["I am a Pi.", Reply(text="You asked who I am.", delay=0.01),
              "You asked who I am, then what you asked."]
    with OllamaTestServer(script) as ollama:
        config = write_config(tmp_path, ollama.url, store="sqlite:///chat.db")
        with ArmillaryServer(config, cwd=tmp_path, log_path=tmp_path / "first.log") as first:
            cid = httpx.post(first.url + "/chat", json={"message": "who are you?"},
                             timeout=10).json()["conversation_id"]
            streamed = httpx.post(first.url + "/chat", timeout=10, json={
                "message": "what did I ask?", "stream": True, "conversation_id": cid})
            before = httpx.get(f"{first.url}/chat/{cid}").json()
        assert streamed.text == "You asked who I am."
        assert (tmp_path / "chat.db").exists()

        with ArmillaryServer(config, cwd=tmp_path, log_path=tmp_path / "second.log") as second:
            after = httpx.get(f"{second.url}/chat/{cid}")
            reply = httpx.post(second.url + "/chat", timeout=10, json={
                "message": "and before that?", "conversation_id": cid})
            history = httpx.get(f"{second.url}/chat/{cid}").json()

    assert after.status_code == 200, after.text
    assert after.json() == before
    assert [(t["user"], t["assistant"], t["partial"]) for t in after.json()["turns"]] == [
        ("who are you?", "I am a Pi.", False),
        ("what did I ask?", "You asked who I am.", False)]
    assert reply.json()["reply"] == "You asked who I am, then what you asked."
    # what the model received from the second process: the first process's turns
    sent = ollama.chat_requests[-1].json["messages"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "who are you?"), ("assistant", "I am a Pi."),
        ("user", "what did I ask?"), ("assistant", "You asked who I am."),
        ("user", "and before that?")]
    assert len(history["turns"]) == 3


def test_with_the_memory_store_a_restart_forgets(tmp_path: Path) -> None:
    # the Pi profile's default: nothing written to the SD card, nothing kept
    with OllamaTestServer(["hello", "hello again"]) as ollama:
        config = write_config(tmp_path, ollama.url, store="memory://")
        with ArmillaryServer(config, cwd=tmp_path) as first:
            cid = httpx.post(first.url + "/chat", json={"message": "hi"},
                             timeout=10).json()["conversation_id"]
            kept = httpx.get(f"{first.url}/chat/{cid}").status_code
        with ArmillaryServer(config, cwd=tmp_path) as second:
            gone = httpx.get(f"{second.url}/chat/{cid}")
    assert kept == 200
    assert (gone.status_code, gone.json()["code"]) == (404, "conversation_not_found")

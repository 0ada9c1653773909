"""The optional model-based moderation check through the real path: `armillary serve`
with the safety, ollama and chat plugins; the Ollama test server plays both the chat
model and the judge (a request whose system prompt is the classifier's is the judge's).
UNSAFE refuses the message before the chat model is asked; a judge that fails is a 503
`moderation_unavailable` (fail-closed) or lets the message through flagged (fail-open);
both are in the audit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from armillary.testing import ArmillaryServer
from tests.support.ollama_server import OllamaTestServer, Reply

CONFIG = """
[kernel]
enable = ["ollama", "chat", "safety"]

[plugins.ollama]
base_url = "{url}"
model = "llama3.2"

[plugins.safety.moderation]
enabled = true
on_error = "{on_error}"
timeout_seconds = 5
"""


def judge(body: dict[str, Any]) -> Reply | None:
    messages = body["messages"]
    if messages[0]["role"] != "system" or "safety classifier" not in messages[0]["content"]:
        return None  # the chat model: the default reply
    text = messages[-1]["content"]
    if "judge-down" in text:
        return Reply(status=500, error="the judge crashed")
    if "judge-rambles" in text:
        return Reply(text="Well, it depends.")
    return Reply(text="UNSAFE" if "malware" in text else "SAFE")


def serve(tmp: Path, on_error: str) -> Iterator[tuple[str, OllamaTestServer]]:
    with OllamaTestServer(default="Here you go.", respond=judge) as ollama:
        config = tmp / "plugins.toml"
        config.write_text(CONFIG.format(url=ollama.url, on_error=on_error))
        with ArmillaryServer(config, cwd=tmp, log_path=tmp / "serve.log") as server:
            yield server.url, ollama
        assert "Traceback" not in server.output()


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, OllamaTestServer]]:
    yield from serve(tmp_path_factory.mktemp("closed"), "closed")


@pytest.fixture(scope="module")
def open_(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, OllamaTestServer]]:
    yield from serve(tmp_path_factory.mktemp("open"), "open")


def chat(url: str, message: str, cid: str) -> httpx.Response:
    return httpx.post(url + "/chat", json={"message": message, "conversation_id": cid},
                      timeout=20)


def audit(url: str, cid: str) -> list[tuple[str, str, str | None, list[str]]]:
    entries = httpx.get(url + "/v1/safety/audit", params={"conversation_id": cid}).json()
    return [(e["stage"], e["action"], e["code"], e["flags"]) for e in entries["entries"]]


def test_a_safe_message_is_answered(closed: tuple[str, OllamaTestServer]) -> None:
    url, ollama = closed
    r = chat(url, "how do I bake bread?", "m-safe")
    assert (r.status_code, r.json()["reply"]) == (200, "Here you go.")
    judged = [q for q in ollama.chat_requests if q.json["messages"][0]["role"] == "system"
              and "safety classifier" in q.json["messages"][0]["content"]]
    assert judged and judged[-1].json["messages"][-1]["content"] == "how do I bake bread?"


def test_an_unsafe_message_is_refused_before_the_chat_model(
        closed: tuple[str, OllamaTestServer]) -> None:
    url, ollama = closed
    before = len(ollama.chat_requests)
    r = chat(url, "write me some malware", "m-unsafe")
    assert r.status_code == 400
    assert r.json() == {"detail": "the input was refused by the moderation model",
                        "code": "moderation_blocked", "stage": "input",
                        "check": "model_moderation"}
    assert len(ollama.chat_requests) == before + 1  # the judge's call only
    assert audit(url, "m-unsafe") == [("input", "blocked", "moderation_blocked",
                                       ["moderation:unsafe"])]


@pytest.mark.parametrize("trigger", ["judge-down", "judge-rambles"])
def test_a_failing_judge_fails_closed_with_503(closed: tuple[str, OllamaTestServer],
                                               trigger: str) -> None:
    url, _ = closed
    r = chat(url, f"hello {trigger}", f"m-{trigger}")
    assert r.status_code == 503
    assert r.json()["code"] == "moderation_unavailable"
    assert "could not judge" in r.json()["detail"]
    assert audit(url, f"m-{trigger}") == [("input", "error", "moderation_unavailable", [])]


def test_a_failing_judge_fails_open_when_configured(
        open_: tuple[str, OllamaTestServer]) -> None:
    url, _ = open_
    r = chat(url, "hello judge-down", "m-open")
    assert (r.status_code, r.json()["reply"]) == (200, "Here you go.")
    assert audit(url, "m-open")[0] == ("input", "flagged", None, ["moderation:unavailable"])

"""The task API end to end: a real `armillary serve` subprocess (SQLite store) talking to
the Ollama test server, driven over HTTP, SSE and WebSocket, killed and restarted."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from armillary._event_stream import EventStreamParser
from armillary.testing import ArmillaryServer
from tests.support.ollama_server import OllamaTestServer, Reply


def agent_brain(body: dict[str, Any]) -> Reply:
    """Calls the calculator once, then answers with what it returned; "slow" goals stream
    slowly so a test can catch them running."""
    messages = body["messages"]
    goal = next(m["content"] for m in messages if m["role"] == "user")
    if messages[-1]["role"] == "tool":
        return Reply(text=f"The result is {messages[-1]['content']}",
                     delay=0.5 if "slow" in goal else 0.0)
    return Reply(tool_calls=[{"name": "calculator", "arguments": {"expression": "6*7"}}])


@pytest.fixture
def ollama() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(respond=agent_brain) as server:
        yield server


def write_config(tmp_path: Path, ollama: OllamaTestServer, *, concurrent: int = 4) -> Path:
    config = tmp_path / "plugins.toml"
    config.write_text(f"""
[kernel]
enable = ["ollama", "tools", "tasks", "sse"]
store = "sqlite:///runs.db"
max_concurrent_runs = {concurrent}

[plugins.ollama]
base_url = "{ollama.url}"
model = "llama3.2"
""")
    return config


def sse_events(url: str, headers: dict[str, str] | None = None) -> list[tuple[int, str, Any]]:
    events: list[tuple[int, str, Any]] = []
    with httpx.stream("GET", url, headers={"Accept": "text/event-stream", **(headers or {})},
                      timeout=30) as response:
        assert response.status_code == 200
        parser = EventStreamParser()
        for line in response.iter_lines():
            message = parser.feed(line)
            if message is not None and message.comment is None:
                events.append((int(message.id or 0), message.event, json.loads(message.data)))
    return events


def test_submit_watch_over_sse_and_websocket_and_read_the_answer(
        tmp_path: Path, ollama: OllamaTestServer) -> None:
    config = write_config(tmp_path, ollama)
    with ArmillaryServer(config, log_path=tmp_path / "serve.log") as server:
        created = httpx.post(server.url + "/v1/tasks", json={"task": "what is 6*7?"})
        assert created.status_code == 202
        task_id = created.json()["task_id"]
        events = sse_events(f"{server.url}/v1/stream/tasks/{task_id}")
        names = [name for _, name, _ in events]
        assert names[0] == "queued" and names[-1] == "completed"
        assert "tool_call" in names and "step" in names
        assert events[-1][2]["result"] == "The result is {\"expression\": \"6*7\", \"result\": 42}"

        result = httpx.get(f"{server.url}/v1/tasks/{task_id}/result")
        assert result.status_code == 200 and "42" in result.json()["final_answer"]
        tools = httpx.get(f"{server.url}/v1/tasks/{task_id}/tools").json()
        assert tools["items"][0]["tool_name"] == "calculator"
        assert tools["items"][0]["result"]["result"] == 42

        second = httpx.post(server.url + "/v1/tasks", json={"task": "again"}).json()["task_id"]
        ws_url = server.url.replace("http://", "ws://") + f"/v1/stream/tasks/{second}"
        with connect(ws_url) as ws:
            messages = [json.loads(m) for m in ws]
        assert messages[-1]["type"] == "completed"
        assert {"type", "payload"} <= set(messages[0])

        assert httpx.get(f"{server.url}/v1/tasks/nope").json()["code"] == "task_not_found"
    assert "Traceback" not in server.output()


def test_after_a_crash_runs_and_event_logs_survive_and_inflight_runs_are_interrupted(
        tmp_path: Path, ollama: OllamaTestServer) -> None:
    config = write_config(tmp_path, ollama, concurrent=1)
    server = ArmillaryServer(config, log_path=tmp_path / "serve.log").start()
    try:
        done = httpx.post(server.url + "/v1/tasks", json={"task": "quick",
                                                          "wait": True}).json()
        assert done["success"] is True
        done_id = done["task_id"]
        done_events = sse_events(f"{server.url}/v1/stream/tasks/{done_id}")

        slow = httpx.post(server.url + "/v1/tasks", json={"task": "slow one"}).json()["task_id"]
        queued = httpx.post(server.url + "/v1/tasks", json={"task": "waiting"}).json()["task_id"]
        with httpx.stream("GET", f"{server.url}/v1/stream/tasks/{slow}",
                          headers={"Accept": "text/event-stream"}, timeout=30) as response:
            for line in response.iter_lines():
                if line == "event: token":  # the slow answer is streaming: crash now
                    break
        assert httpx.get(f"{server.url}/v1/tasks/{queued}").json()["status"] == "queued"
        server.kill()
    finally:
        server.stop()

    with ArmillaryServer(config, log_path=tmp_path / "serve2.log") as again:
        assert sse_events(f"{again.url}/v1/stream/tasks/{done_id}") == done_events

        crashed = httpx.get(f"{again.url}/v1/tasks/{slow}").json()
        assert crashed["status"] == "interrupted"
        assert crashed["error"]["code"] == "interrupted"
        replay = sse_events(f"{again.url}/v1/stream/tasks/{slow}")
        assert [n for _, n, _ in replay][:2] == ["queued", "running"]
        assert replay[-1][1] == "interrupted"
        assert [seq for seq, _, _ in replay] == list(range(1, len(replay) + 1))

        resumed = sse_events(f"{again.url}/v1/stream/tasks/{queued}")
        assert resumed[-1][1] == "completed"  # never started, so it ran after the restart

        control = httpx.post(f"{again.url}/v1/tasks/{slow}/control", json={"action": "resume"})
        assert control.status_code == 409 and control.json()["status"] == "interrupted"


def test_cli_submit_follows_a_remote_task_and_prints_the_answer(
        tmp_path: Path, ollama: OllamaTestServer) -> None:
    config = write_config(tmp_path, ollama)
    with ArmillaryServer(config, log_path=tmp_path / "serve.log") as server:
        done = subprocess.run(
            [sys.executable, "-m", "armillary", "submit", "what is 6*7?", "--url", server.url,
             "--follow"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "42" in done.stdout
        assert "calculator" in done.stderr and "completed" in done.stderr

        quiet = subprocess.run(
            [sys.executable, "-m", "armillary", "submit", "hello", "--url", server.url],
            capture_output=True, text=True, timeout=60)
        assert quiet.returncode == 0 and quiet.stdout.strip().startswith("run_")

        refused = subprocess.run(
            [sys.executable, "-m", "armillary", "submit", "hi", "--url", server.url,
             "--agent", "ghost"], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "agent_not_found" in refused.stderr


def test_cli_submit_to_nothing_says_it_cannot_reach_the_server() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "armillary", "submit", "hi", "--url", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "cannot reach" in done.stderr

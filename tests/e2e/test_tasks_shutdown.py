"""`armillary serve` shutting down while clients follow live runs, and two servers on one
SQLite file: real subprocesses, the Ollama test server, SSE and WebSocket clients."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from armillary._event_stream import EventStreamParser
from armillary.testing import ArmillaryServer
from tests.support.ollama_server import OllamaTestServer, Reply

#: generous: the point is "exits by itself", not how fast
EXIT_BOUND = 15.0


def brain(body: dict[str, Any]) -> Reply:
    """"crawl" goals stream a long answer very slowly; anything else answers at once."""
    goal = next(m["content"] for m in body["messages"] if m["role"] == "user")
    if "crawl" in goal:
        return Reply(text=" ".join(["slow"] * 400), delay=0.1)
    return Reply(text="quick answer")


@pytest.fixture
def ollama() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(respond=brain) as server:
        yield server


def write_config(tmp_path: Path, ollama: OllamaTestServer) -> Path:
    config = tmp_path / "plugins.toml"
    config.write_text(f"""
[kernel]
enable = ["ollama", "tools", "tasks", "sse"]
store = "sqlite:///runs.db"
max_concurrent_runs = 2

[plugins.ollama]
base_url = "{ollama.url}"
model = "llama3.2"
""")
    return config


class SSEFollower(threading.Thread):
    """Reads a task's SSE stream in the background; `events` are (event, data) pairs."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.events: list[tuple[str, Any]] = []
        self.ended_cleanly = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers={"Accept": "text/event-stream"},
                              timeout=60) as response:
                parser = EventStreamParser()
                for line in response.iter_lines():
                    message = parser.feed(line)
                    if message is not None and message.comment is None:
                        self.events.append((message.event, json.loads(message.data)))
            self.ended_cleanly = True
        except BaseException as exc:  # reported by the test
            self.error = exc


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_sigterm_with_followers_ends_live_runs_interrupted_and_exits(
        tmp_path: Path, ollama: OllamaTestServer) -> None:
    config = write_config(tmp_path, ollama)
    server = ArmillaryServer(config, log_path=tmp_path / "serve.log").start()
    assert server.process is not None
    try:
        task_id = httpx.post(server.url + "/v1/tasks", json={"task": "crawl along"}
                             ).json()["task_id"]
        follower = SSEFollower(f"{server.url}/v1/stream/tasks/{task_id}")
        follower.start()
        waited: dict[str, Any] = {}

        def wait_request() -> None:
            try:
                r = httpx.post(server.url + "/v1/tasks", json={"task": "crawl too",
                                                               "wait": True}, timeout=60)
                waited["status"], waited["body"] = r.status_code, r.json()
            except httpx.HTTPError as exc:
                waited["error"] = exc

        waiter = threading.Thread(target=wait_request, daemon=True)
        waiter.start()
        ws_url = server.url.replace("http://", "ws://") + f"/v1/stream/tasks/{task_id}"
        with connect(ws_url) as ws:
            wait_for(lambda: any(name == "token" for name, _ in follower.events))
            wait_for(lambda: httpx.get(server.url + "/v1/tasks?status=running").json()
                     ["total"] == 2)

            server.process.send_signal(signal.SIGTERM)
            try:
                code = server.process.wait(EXIT_BOUND)
            except Exception:
                server.kill()
                raise AssertionError(f"serve did not exit within {EXIT_BOUND}s of SIGTERM") \
                    from None
            assert code in (0, -signal.SIGTERM)
            ws_messages = [json.loads(m) for m in ws]
        assert ws_messages[-1]["type"] == "interrupted"

        follower.join(5)
        assert follower.error is None and follower.ended_cleanly
        assert follower.events[-1][0] == "interrupted"
        assert follower.events[-1][1]["error"]["code"] == "interrupted"
        waiter.join(5)
        assert waited.get("status") == 200 and waited["body"]["status"] == "interrupted"
    finally:
        server.stop()
    output = server.output()
    assert "Traceback" not in output
    assert "Application shutdown complete" in output

    db = sqlite3.connect(tmp_path / "runs.db")
    status = db.execute("SELECT status FROM runs WHERE id = ?", (task_id,)).fetchone()[0]
    ends = db.execute("SELECT type FROM events WHERE run_id = ? AND type IN ('completed', "
                      "'failed', 'cancelled', 'stopped', 'interrupted')", (task_id,)).fetchall()
    db.close()
    assert status == "interrupted" and ends == [("interrupted",)]

    with ArmillaryServer(config, log_path=tmp_path / "serve2.log") as again:
        after = httpx.get(f"{again.url}/v1/tasks/{task_id}").json()
        assert after["status"] == "interrupted" and after["error"]["code"] == "interrupted"


def test_a_second_server_on_the_same_store_refuses_to_start_and_leaves_the_first_alone(
        tmp_path: Path, ollama: OllamaTestServer) -> None:
    config = write_config(tmp_path, ollama)
    with ArmillaryServer(config, log_path=tmp_path / "first.log") as first:
        assert first.process is not None
        live = httpx.post(first.url + "/v1/tasks", json={"task": "crawl on"}).json()["task_id"]
        wait_for(lambda: httpx.get(f"{first.url}/v1/tasks/{live}").json()["status"]
                 == "running")

        second = ArmillaryServer(config, log_path=tmp_path / "second.log")
        with pytest.raises(RuntimeError):
            second.start()
        second.stop()
        assert second.process is not None and second.process.returncode != 0
        output = second.output()
        store = tmp_path / "runs.db"
        line = (f"armillary: cannot start: store {store} is in use by another armillary "
                f"process (pid {first.process.pid})")
        assert line in output, output
        assert "Traceback" not in output

        # the first server's live run was not touched, and it still works
        assert httpx.get(f"{first.url}/v1/tasks/{live}").json()["status"] == "running"
        done = httpx.post(first.url + "/v1/tasks", json={"task": "hi", "wait": True},
                          timeout=30).json()
        assert done["status"] == "completed" and done["final_answer"] == "quick answer"
        assert httpx.delete(f"{first.url}/v1/tasks/{live}").json()["status"] == "cancelled"
    assert "Traceback" not in first.output()

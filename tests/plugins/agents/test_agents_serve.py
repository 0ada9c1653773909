"""The agents plugin in a real `armillary serve` subprocess, over the Ollama plugin and the
Ollama test server, with the seed's bodies; tasks survive a restart (SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from websockets.sync.client import connect

from armillary.testing import ArmillaryServer
from tests.support.ollama_server import OllamaTestServer, Reply


def serve(tmp_path: Path, ollama: OllamaTestServer) -> ArmillaryServer:
    config = tmp_path / "plugins.toml"
    config.write_text(f"""
[kernel]
enable = ["ollama", "tasks", "agents"]
store = "sqlite:///runs.db"

[plugins.ollama]
base_url = "{ollama.url}"
model = "llama3.2"

[plugins.agents]
update_interval_seconds = 0.5
min_update_interval_seconds = 0.05

[agents.researcher]
description = "Finds things out"
""")
    return ArmillaryServer(config, cwd=tmp_path, log_path=tmp_path / "serve.log")


def test_the_seeds_client_flow_against_a_real_server(tmp_path: Path) -> None:
    slow = Reply(text=" ".join(["slow"] * 400), delay=0.1)
    with OllamaTestServer(["Paris.", slow]) as ollama:
        with serve(tmp_path, ollama) as server:
            ws_url = server.url.replace("http://", "ws://") + "/ws/agent-updates"
            with connect(ws_url) as ws, httpx.Client(base_url=server.url, timeout=30) as c:
                first = json.loads(ws.recv(timeout=10))
                ok = c.post("/agents/researcher/execute", json={
                    "operation": "capital of France?", "parameters": {}, "priority": "urgent"})
                late = c.post("/agents/researcher/execute", json={
                    "operation": "write a lot", "timeout_seconds": 1})
                bad = c.post("/agents/researcher/execute", json={
                    "operation": "x", "timeout_seconds": 7200})
                while True:
                    update = json.loads(ws.recv(timeout=10))
                    if update["data"]["agents"]["researcher"]["task_count"] == 2:
                        break
                status = c.get("/system/status")
                agents = c.get("/agents").json()["agents"]
        with serve(tmp_path, ollama) as server:  # again, on the same database
            tasks = httpx.get(server.url + "/tasks", params={"limit": 10}).json()["tasks"]
    assert first["event_type"] == "system_status"
    assert ok.status_code == 200 and ok.json()["result"]["output"] == "Paris."
    assert (late.json()["status"], late.json()["error_code"]) == ("failed", "task_timeout")
    assert ollama.streams[-1].client_closed
    assert (bad.status_code, bad.json()["code"]) == (422, "validation_error")
    assert update["event_type"] == "status_update"
    researcher = update["data"]["agents"]["researcher"]
    assert (researcher["success_count"], researcher["error_count"]) == (1, 1)
    assert researcher["last_error_code"] == "task_timeout"
    metrics = status.json()["api_metrics"]
    # ArmillaryServer's readiness probe, then the three executes (this one is in flight)
    assert metrics["total_requests"] == 4
    assert metrics["current_connections"] == 2  # this request and the WebSocket
    assert status.headers["x-response-time"].endswith("ms")
    assert {a["agent_id"] for a in agents} == {"default", "researcher"}
    assert [t["task_id"] for t in tasks] == [late.json()["task_id"], ok.json()["task_id"]]
    assert tasks[0]["error_code"] == "task_timeout"


def test_shutdown_closes_update_clients_with_going_away(tmp_path: Path) -> None:
    from websockets.exceptions import ConnectionClosed

    with OllamaTestServer() as ollama:
        server = serve(tmp_path, ollama).start()
        try:
            ws_url = server.url.replace("http://", "ws://") + "/ws/agent-updates"
            with connect(ws_url) as ws:
                assert json.loads(ws.recv(timeout=10))["event_type"] == "system_status"
                server.process.terminate()  # SIGTERM, as a service manager stops it
                try:
                    while True:
                        ws.recv(timeout=10)
                except ConnectionClosed as closed:
                    code = closed.rcvd.code if closed.rcvd else None
            assert server.process.wait(10) in (0, -15)  # uvicorn re-raises the signal
        finally:
            server.stop()
    assert code == 1001

"""`armillary serve` as a user runs it: a subprocess on a loopback port."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from armillary.testing import ArmillaryServer


def test_serve_answers_health_plugins_and_errors_then_stops_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "plugins.toml"
    config.write_text('[kernel]\nenable = []\nstore = "sqlite:///data.db"\n')
    server = ArmillaryServer(config, log_path=tmp_path / "serve.log").start()
    try:
        health = httpx.get(server.url + "/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert httpx.get(server.url + "/v1/health").json()["ready"] is True
        names = [p["name"] for p in httpx.get(server.url + "/v1/plugins").json()["plugins"]]
        assert "builtin:health" in names
        missing = httpx.get(server.url + "/v1/nothing-here")
        assert missing.status_code == 404
        assert missing.json()["code"] == "not_found"
        assert (tmp_path / "data.db").exists()  # relative to the config file's folder
    finally:
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught
        assert server.process.wait(10) in (0, -signal.SIGTERM)
        server.stop()
    assert "Application shutdown complete" in server.output()
    assert "Traceback" not in server.output()


def test_a_store_that_cannot_start_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "plugins.toml"
    config.write_text('[kernel]\nenable = []\nstore = "postgres://db/armillary"\n')
    server = ArmillaryServer(config, log_path=tmp_path / "serve.log")
    try:
        server.start()
        raise AssertionError("the server should not have started")
    except RuntimeError:
        pass
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode != 0
    output = server.output()
    assert "armillary: cannot start:" in output
    assert "no installed plugin handles 'postgres' URLs" in output
    assert "Traceback" not in output


def test_the_repositorys_default_profile_serves_every_plugin_it_enables(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    store = tmp_path / "runs.db"
    env = {"ARMILLARY_STORE": f"sqlite:///{store}"}
    with ArmillaryServer(repo / "plugins.toml", env=env, cwd=tmp_path,
                         log_path=tmp_path / "serve.log") as server:
        health = httpx.get(server.url + "/health", timeout=10).json()
        enabled = {"ollama", "tools", "tasks", "sse", "chat", "agents"}
        assert {name for name, p in health["plugins"].items() if p["status"] == "loaded"} \
            >= enabled
        # nothing listens on the profile's Ollama port here: reported, not fatal
        assert "ollama" in health["providers"]
        plugins = {p["name"]: p for p in
                   httpx.get(server.url + "/v1/plugins").json()["plugins"]}
        assert "calculator" in plugins["tools"]["registered"]["tools"]
    assert store.exists()
    assert "Traceback" not in server.output()

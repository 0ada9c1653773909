"""Scenario settings are checked at startup: the server refuses to start, naming what
is wrong, rather than serving agents that cannot work."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from armillary.testing import ArmillaryServer
from tests.plugins.realtime.agents_harness import write_config

BAD_HANDOFF = """
[plugins.realtime.scenarios.s]
[[plugins.realtime.scenarios.s.agents]]
name = "a"
handoffs = ["b"]
"""

UNKNOWN_TOOL = """
[plugins.realtime.scenarios.s]
[[plugins.realtime.scenarios.s.agents]]
name = "a"
tools = ["teleport"]
"""


@pytest.mark.parametrize(("scenarios", "expected"), [
    (BAD_HANDOFF, "hands off to unknown agent(s) b"),
    (UNKNOWN_TOOL, "names tools no enabled plugin registers: s.a: teleport"),
])
def test_a_broken_scenario_stops_startup_with_a_clear_message(
        tmp_path: Path, scenarios: str, expected: str) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", scenarios=scenarios)
    with pytest.raises(RuntimeError) as failed:
        ArmillaryServer(config, log_path=tmp_path / "serve.log").start()
    assert expected in str(failed.value)
    assert "realtime" in str(failed.value)


def test_the_sdk_agent_run_outside_a_session_fails_with_a_code(tmp_path: Path) -> None:
    # `realtime_sdk` is a registered agent, so the task API can name it; without the
    # session plan its runs fail cleanly instead of with an internal error
    config = write_config(tmp_path, "http://127.0.0.1:9",
                          enable=("ollama", "tools", "tasks", "realtime"))
    with ArmillaryServer(config, log_path=tmp_path / "serve.log") as server:
        reply = httpx.post(server.url + "/v1/tasks", json={
            "task": "hi", "agent": "realtime_sdk", "wait": True}, timeout=15)
        output = server.output()
    assert reply.status_code == 200, reply.text
    assert (reply.json()["status"], reply.json()["error"]["code"]) == ("failed", "invalid_run")
    assert "Traceback" not in output

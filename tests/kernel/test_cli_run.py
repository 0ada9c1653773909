"""`armillary run "goal"`: in-process, no server; progress on stderr, answer on stdout."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from armillary._cli_run import ProgressPrinter
from armillary._models import Event
from tests.support.ollama_server import OllamaTestServer, Reply


def config_for(tmp_path: Path, ollama: OllamaTestServer) -> Path:
    path = tmp_path / "plugins.toml"
    path.write_text(f"""
[kernel]
enable = ["ollama", "tools"]

[plugins.ollama]
base_url = "{ollama.url}"
model = "llama3.2"

[agents.mathy]
instructions = "Use the calculator."
tools = ["calculator"]
""")
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "armillary", "run", *args],
                          capture_output=True, text=True, timeout=60)


def test_run_prints_plain_progress_when_piped_and_the_answer_on_stdout(tmp_path: Path) -> None:
    script = [Reply(tool_calls=[{"name": "calculator", "arguments": {"expression": "2+3"}}]),
              Reply(text="It is 5.")]
    with OllamaTestServer(script) as ollama:
        done = run_cli("what is 2+3?", "--config", str(config_for(tmp_path, ollama)),
                       "--agent", "mathy", "--max-steps", "4")
        assert ollama.requests[-1].json["messages"][0]["content"] == "Use the calculator."
    assert done.returncode == 0, done.stderr
    assert done.stdout == "It is 5.\n"
    assert "\x1b[" not in done.stderr  # no terminal control codes when piped
    assert "✓ calculator" in done.stderr and "step 1" in done.stderr
    assert "completed after 2 steps" in done.stderr
    assert not (tmp_path / "armillary.db").exists()  # in-memory: nothing left behind


def test_run_exits_1_with_the_providers_code_when_the_model_server_fails(
        tmp_path: Path) -> None:
    with OllamaTestServer([Reply(status=500, error="model crashed")]) as ollama:
        done = run_cli("hi", "--config", str(config_for(tmp_path, ollama)))
    assert done.returncode == 1
    assert "failed" in done.stderr and "model crashed" in done.stderr


def test_run_with_an_unknown_agent_says_so(tmp_path: Path) -> None:
    with OllamaTestServer() as ollama:
        done = run_cli("hi", "--config", str(config_for(tmp_path, ollama)), "--agent", "ghost")
    assert done.returncode == 1 and "agent_not_found" in done.stderr


def test_the_live_display_redraws_a_status_line_on_a_terminal() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, live=True)
    for seq, (kind, payload) in enumerate([
            ("running", {}), ("token", {"delta": "thinking hard"}),
            ("step", {"step_number": 1, "success": True, "duration_seconds": 0.5}),
            ("completed", {"result": "done", "steps_taken": 1})], start=1):
        printer.event(Event(id=str(seq), run_id="r", seq=seq, type=kind, payload=payload))
    text = out.getvalue()
    assert "\r\x1b[K" in text and "thinking hard" in text
    assert "step 1 ✓ 0.50s" in text and "completed after 1 steps" in text
    assert printer.answer == "done" and printer.final == "completed"

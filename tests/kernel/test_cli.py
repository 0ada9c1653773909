"""The `armillary` command, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.fake_dists import TOOL_PLUGIN, install_plugin


def armillary(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "armillary", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=60)


def test_help_lists_the_commands() -> None:
    out = armillary("--help")
    assert out.returncode == 0
    for command in ("serve", "plugins", "check", "run", "submit", "openapi"):
        assert f"  {command}" in out.stdout


def test_plugins_lists_name_distribution_version_enabled_and_status(
        site: Path, tmp_path: Path) -> None:
    install_plugin(site, "echoer", TOOL_PLUGIN.format(tool="echo_x"), version="2.0.1")
    install_plugin(site, "broken", "raise ImportError('no module named libfoo')\n")
    install_plugin(site, "sleeper", TOOL_PLUGIN.format(tool="echo_s"))
    (tmp_path / "plugins.toml").write_text('[kernel]\nstore = "memory://"\n'
                                           'disable = ["sleeper"]\n')
    out = armillary("plugins", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["echoer"]["distribution"] == "armillary-echoer"
    assert rows["echoer"]["version"] == "2.0.1"
    assert (rows["echoer"]["enabled"], rows["echoer"]["status"]) == (True, "loaded")
    assert (rows["sleeper"]["enabled"], rows["sleeper"]["status"]) == (False, "disabled")
    assert rows["broken"]["status"] == "failed"
    assert rows["broken"]["error"] == "ImportError: no module named libfoo"

    table = armillary("plugins").stdout
    assert "echoer" in table and "armillary-echoer" in table and "2.0.1" in table
    assert "failed: ImportError: no module named libfoo" in table


def test_check_accepts_a_good_file(site: Path, tmp_path: Path) -> None:
    install_plugin(site, "echoer", TOOL_PLUGIN.format(tool="echo_y"))
    path = tmp_path / "good.toml"
    path.write_text('[kernel]\nenable = ["echoer"]\nstore = "memory://"\n')
    out = armillary("check", "--config", str(path))
    assert out.returncode == 0, out.stderr
    assert "OK (1 plugins: echoer)" in out.stdout


def test_check_names_file_section_and_field_and_exits_non_zero(site: Path,
                                                               tmp_path: Path) -> None:
    install_plugin(site, "echoer", TOOL_PLUGIN.format(tool="echo_z"))
    path = tmp_path / "bad.toml"
    path.write_text('[kernel]\nenable = ["echoer", "echoes"]\n')
    out = armillary("check", "--config", str(path))
    assert out.returncode == 1
    assert f"{path}: [kernel] enable: unknown plugin 'echoes'; did you mean 'echoer'?" \
        in out.stderr
    assert "Traceback" not in out.stderr


def test_check_reports_malformed_toml_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[kernel]\nenable = [\n")
    out = armillary("check", "--config", str(path))
    assert out.returncode != 0
    assert "not valid TOML" in out.stderr
    assert "Traceback" not in out.stderr


def test_openapi_prints_the_assembled_document(tmp_path: Path) -> None:
    path = tmp_path / "none.toml"
    path.write_text('[kernel]\nenable = []\nstore = "memory://"\n')
    out = armillary("openapi", "--config", str(path))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["info"]["title"] == "Armillary"
    assert {"/health", "/v1/health", "/v1/plugins"} <= set(doc["paths"])


def test_serve_stops_with_a_clear_message_when_an_enabled_plugin_fails(
        site: Path, tmp_path: Path) -> None:
    install_plugin(site, "broken", "raise RuntimeError('missing GPU driver')\n")
    path = tmp_path / "p.toml"
    path.write_text('[kernel]\nenable = ["broken"]\nstore = "memory://"\n')
    out = armillary("serve", "--config", str(path), "--port", "1")
    assert out.returncode == 2
    assert "plugin 'broken'" in out.stderr
    assert "RuntimeError: missing GPU driver" in out.stderr
    assert "Traceback" not in out.stderr

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
    assert out.returncode == 1, out.stderr  # an enabled plugin cannot load
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


BROKEN = "raise ImportError('no module named libfoo')\n"
BROKEN_ERROR = "ImportError: no module named libfoo"


def test_plugins_pins_an_explicit_plugins_load_error_on_that_plugin_only(
        site: Path, tmp_path: Path) -> None:
    install_plugin(site, "echoer", TOOL_PLUGIN.format(tool="echo_e"))
    install_plugin(site, "broken", BROKEN)
    install_plugin(site, "idle", TOOL_PLUGIN.format(tool="echo_i"))
    path = tmp_path / "p.toml"
    path.write_text('[kernel]\nenable = ["echoer", "broken"]\nstore = "memory://"\n')
    out = armillary("plugins", "--json", "--config", str(path))
    assert out.returncode == 1, out.stdout + out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert (rows["broken"]["enabled"], rows["broken"]["status"]) == (True, "failed")
    assert rows["broken"]["error"] == BROKEN_ERROR
    assert (rows["echoer"]["enabled"], rows["echoer"]["status"], rows["echoer"]["error"]) \
        == (True, "loaded", None)
    assert (rows["idle"]["enabled"], rows["idle"]["status"], rows["idle"]["error"]) \
        == (False, "disabled", None)
    assert [n for n, r in rows.items() if r["error"]] == ["broken"]
    assert out.stderr.count(BROKEN_ERROR) == 1  # why it exits non-zero, said once
    assert "plugin 'broken'" in out.stderr
    assert "Traceback" not in out.stderr

    table = armillary("plugins", "--config", str(path))
    assert table.returncode == 1
    lines = {line.split()[0]: line for line in table.stdout.splitlines()[1:]}
    assert lines["broken"].rstrip().endswith(f"failed: {BROKEN_ERROR}")
    assert lines["echoer"].rstrip().endswith("loaded")
    assert BROKEN_ERROR not in lines["echoer"] + lines["idle"]
    assert (table.stdout + table.stderr).count(BROKEN_ERROR) == 2  # its row, and the reason


def test_plugins_exits_zero_when_every_enabled_plugin_loads(site: Path,
                                                            tmp_path: Path) -> None:
    install_plugin(site, "echoer", TOOL_PLUGIN.format(tool="echo_ok"))
    install_plugin(site, "broken", BROKEN)
    path = tmp_path / "p.toml"
    path.write_text('[kernel]\nenable = ["echoer"]\nstore = "memory://"\n')
    out = armillary("plugins", "--json", "--config", str(path))
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["broken"]["status"] == "disabled"  # not enabled, so never imported
    assert out.stderr == ""


def test_plugins_names_a_plugin_that_fails_while_registering(site: Path,
                                                             tmp_path: Path) -> None:
    install_plugin(site, "echoer", TOOL_PLUGIN.format(tool="echo_r"))
    install_plugin(site, "badreg", """
        from armillary import hookimpl

        @hookimpl
        def register_tools(register):
            raise RuntimeError("no licence file")
    """)
    path = tmp_path / "p.toml"
    path.write_text('[kernel]\nenable = ["echoer", "badreg"]\nstore = "memory://"\n')
    out = armillary("plugins", "--json", "--config", str(path))
    assert out.returncode == 1
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["badreg"]["status"] == "failed"
    assert "RuntimeError: no licence file" in rows["badreg"]["error"]
    assert rows["echoer"]["status"] == "loaded" and rows["echoer"]["error"] is None
    assert out.stderr.count("no licence file") == 1


def test_plugins_with_a_config_error_lists_what_is_installed_and_says_why_once(
        site: Path, tmp_path: Path) -> None:
    install_plugin(site, "echoer", TOOL_PLUGIN.format(tool="echo_c"))
    path = tmp_path / "p.toml"
    path.write_text('[kernel]\nenable = ["echoer", "echoes"]\n')
    out = armillary("plugins", "--json", "--config", str(path))
    assert out.returncode == 1
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert "echoer" in rows
    assert not any(r["error"] for r in rows.values())  # not pinned on any plugin
    assert out.stderr.count("unknown plugin 'echoes'") == 1


def test_check_reports_a_failed_implicit_plugin_once_and_exits_non_zero(
        site: Path, tmp_path: Path) -> None:
    install_plugin(site, "echoer", TOOL_PLUGIN.format(tool="echo_w"))
    install_plugin(site, "broken", BROKEN)
    path = tmp_path / "p.toml"
    path.write_text('[kernel]\nstore = "memory://"\n')  # every installed plugin, implicitly
    out = armillary("check", "--config", str(path))
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr.count(BROKEN_ERROR) == 1, out.stderr
    assert "plugin 'broken'" in out.stderr
    assert "OK" not in out.stdout
    assert "Traceback" not in out.stderr


def test_check_reports_a_plugin_failing_to_register_once(site: Path, tmp_path: Path) -> None:
    install_plugin(site, "badreg", """
        from armillary import hookimpl

        @hookimpl
        def register_tools(register):
            raise RuntimeError("no licence file")
    """)
    path = tmp_path / "p.toml"
    path.write_text('[kernel]\nstore = "memory://"\n')
    out = armillary("check", "--config", str(path))
    assert out.returncode == 1
    assert out.stderr.count("no licence file") == 1, out.stderr
    assert "OK" not in out.stdout

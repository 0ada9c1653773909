"""A third-party plugin, built and pip-installed next to the kernel in a fresh virtualenv."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from armillary.testing import ArmillaryServer
from tests.support.wheels import build_wheels, fresh_venv, pip_install, pip_uninstall

pytestmark = pytest.mark.slow


def plugins_json(python: Path, config: Path) -> dict[str, dict[str, object]]:
    out = subprocess.run([str(python), "-m", "armillary", "plugins", "--json", "--config",
                          str(config)], capture_output=True, text=True, check=True)
    return {row["name"]: row for row in json.loads(out.stdout)}


def test_a_pip_installed_tool_pack_is_discovered_enabled_and_removed(tmp_path: Path) -> None:
    wheels = build_wheels(tmp_path / "dist", "armillary", "armillary-units")
    python = fresh_venv(tmp_path / "venv")
    pip_install(python, *wheels)

    config = tmp_path / "plugins.toml"
    config.write_text('[kernel]\nenable = ["units"]\nstore = "memory://"\n\n'
                      '[plugins.units]\nprecision = 3\n')
    listed = plugins_json(python, config)
    assert listed["units"]["distribution"] == "armillary-units"
    assert listed["units"]["status"] == "loaded"
    assert set(listed) == {"units"}  # nothing else is installed in this venv

    with ArmillaryServer(config, python=str(python), log_path=tmp_path / "serve.log") as server:
        plugins = {p["name"]: p for p in
                   httpx.get(server.url + "/v1/plugins").json()["plugins"]}
        assert plugins["units"]["registered"] == {
            "tools": ["convert_units", "convert_temperature"]}
        assert plugins["units"]["version"] == "0.1.0"

    pip_uninstall(python, "armillary-units")
    config.write_text('[kernel]\nstore = "memory://"\n')
    assert "units" not in plugins_json(python, config)

"""A plugin's own logger (`logging.getLogger(__name__)`) shows under `armillary serve`."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from armillary.testing import ArmillaryServer
from tests.support.fake_dists import install_plugin

LOGGING_PLUGIN = '''
import logging

from armillary import hookimpl

log = logging.getLogger(__name__)


@hookimpl
async def startup(kernel):
    log.info("the chatty plugin is up")
    log.debug("a debug line")
'''


def test_a_plugins_info_log_shows_under_serve(tmp_path: Path) -> None:
    site = tmp_path / "site"
    module = install_plugin(site, "chatty", LOGGING_PLUGIN)
    config = tmp_path / "plugins.toml"
    config.write_text('[kernel]\nenable = ["chatty"]\nstore = "memory://"\n'
                      'log_level = "info"\n', encoding="utf-8")
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    with ArmillaryServer(config, env={"PYTHONPATH": path},
                         log_path=tmp_path / "serve.log") as server:
        assert httpx.get(f"{server.url}/health").status_code == 200
        output = server.output()
    assert f"{module}: the chatty plugin is up" in output
    assert "a debug line" not in output

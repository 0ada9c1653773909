"""Nothing of the metrics plugin (nor prometheus-client, nor the JSON log format) is
imported unless asked for: the Pi profile and the default text logs never pay for it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PROBE = """
import json, sys
from armillary._app import create_app
create_app(sys.argv[1])
print(json.dumps(sorted(m for m in ("armillary_metrics", "prometheus_client",
                                    "armillary._logging") if m in sys.modules)))
"""


def imported_by(config: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, config], capture_output=True,
                          text=True, cwd=REPO, timeout=60, check=True)
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_pi_profile_imports_none_of_it() -> None:
    assert imported_by(str(REPO / "plugins.pi.toml")) == []


def test_enabled_it_loads_prometheus_client_only_at_startup(tmp_path: Path) -> None:
    config = tmp_path / "plugins.toml"
    config.write_text('[kernel]\nenable = ["metrics"]\nstore = "memory://"\n')
    # assembling the app imports the plugin; the registry is built when the server starts
    assert imported_by(str(config)) == ["armillary_metrics"]

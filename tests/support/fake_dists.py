"""Real installed distributions for loader tests, without pip.

`install_plugin(site, "greeter", source)` writes `greeter_plugin.py` and a
`armillary_greeter-0.1.0.dist-info` folder with METADATA and entry_points.txt into `site`;
put `site` on sys.path (or PYTHONPATH) and importlib.metadata finds it like any install.
"""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path


def install_plugin(site: Path, name: str, source: str, *, version: str = "0.1.0",
                   module: str | None = None) -> str:
    """Install a one-module plugin `name` into `site`; returns its module name."""
    # a fresh module name per install: the same plugin name in another test must not
    # find this one's module already in sys.modules
    module = module or f"{name.replace('-', '_')}_plugin_{uuid.uuid4().hex[:8]}"
    dist = f"armillary-{name}"
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[armillary]\n{name} = {module}\n", encoding="utf-8")
    (info / "RECORD").write_text("", encoding="utf-8")
    return module


TOOL_PLUGIN = '''
from armillary import hookimpl, tool

@tool
def {tool}(text: str) -> str:
    """Echo the text."""
    return text

@hookimpl
def register_tools(register):
    register({tool})
'''

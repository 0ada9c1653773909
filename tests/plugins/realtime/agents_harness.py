"""Shared by the realtime agents tests: a plugins.toml with a two-scenario setup, and the
same plugins served in this process (for tests that add a safety check)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import armillary_ollama
import armillary_realtime
import armillary_sse
import armillary_tools
import httpx

from armillary.testing import make_app, serve_app

SCENARIOS = """
[plugins.realtime]
default_scenario = "retail"
context_sources = ["current_time"]

[plugins.realtime.scenarios.retail]
name = "Retail"
description = "A shop's customer service"
default_root = "supervisor"

[[plugins.realtime.scenarios.retail.agents]]
name = "supervisor"
instructions = "You greet customers and route them."
voice = "sage"
handoff_description = "Greets and routes customers"
handoffs = ["returns", "sales"]
tools = ["current_time"]

[[plugins.realtime.scenarios.retail.agents]]
name = "returns"
instructions = "You handle returns and refunds."
handoff_description = "Returns, refunds and exchanges of delivered orders"
keywords = ["refund", "broken", "exchange"]
handoffs = ["supervisor"]
tools = ["calculator"]

[[plugins.realtime.scenarios.retail.agents]]
name = "sales"
instructions = "You sell."
handoff_description = "New purchases, prices and discounts"
keywords = ["buy", "price", "discount"]

[plugins.realtime.scenarios.haiku]
[[plugins.realtime.scenarios.haiku.agents]]
name = "poet"
instructions = "Answer in haiku."
"""

SCENARIO_SETTINGS: dict[str, Any] = {
    "default_scenario": "retail",
    "context_sources": ["current_time"],
    "scenarios": {"retail": {"default_root": "supervisor", "agents": [
        {"name": "supervisor", "instructions": "You greet customers and route them.",
         "handoffs": ["returns"], "tools": ["current_time"]},
        {"name": "returns", "instructions": "You handle returns and refunds.",
         "handoff_description": "Returns and refunds", "tools": ["calculator"]}]}},
}


def write_config(tmp_path: Path, ollama_url: str, *, store: str = "memory://",
                 extra: str = "", scenarios: str = SCENARIOS,
                 enable: tuple[str, ...] = ("ollama", "tools", "sse", "realtime")) -> Path:
    config = tmp_path / "plugins.toml"
    config.write_text(f"""
[kernel]
enable = {json.dumps(list(enable))}
store = "{store}"

[plugins.ollama]
base_url = "{ollama_url}"
model = "llama3.2"
{scenarios}
{extra}
""")
    return config


@asynccontextmanager
async def served(ollama_url: str, *extra_plugins: tuple[str, object],
                 realtime: dict[str, Any] | None = None
                 ) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The realtime, tools, sse and ollama plugins (plus `extra_plugins`) in this
    process on real uvicorn; yields (client, app)."""
    app = make_app({"ollama": armillary_ollama, "tools": armillary_tools,
                    "sse": armillary_sse, "realtime": armillary_realtime,
                    **dict(extra_plugins)},
                   config={"plugins": {"ollama": {"base_url": ollama_url,
                                                  "model": "llama3.2"},
                                       "realtime": realtime or SCENARIO_SETTINGS}})
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client, app


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event, data as JSON) for each SSE message of a whole body."""
    out = []
    for block in text.split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if name is not None:
            out.append((name, json.loads("\n".join(data))))
    return out

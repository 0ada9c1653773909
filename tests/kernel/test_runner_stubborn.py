"""A strategy that swallows its cancel does not make a cancel hang: after
`cancel_grace_seconds` the run is ended regardless (and the stubborn task is logged)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import armillary_tasks
import httpx
import pytest

from armillary import RunContext, Strategy, hookimpl
from armillary.testing import make_app, serve_app


class Stubborn(Strategy):
    name = "stubborn"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.finished = asyncio.Event()

    async def execute(self, ctx: RunContext) -> str:
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(1.5)  # it takes the cancel, then goes on regardless
        self.finished.set()
        return "done my way"


class StubbornPlugin:
    def __init__(self) -> None:
        self.strategy = Stubborn()

    @hookimpl
    def register_strategies(self, register: Any) -> None:
        register(self.strategy)


async def test_a_cancel_ends_a_run_whose_strategy_swallows_it_within_the_grace(
        caplog: pytest.LogCaptureFixture) -> None:
    plugin = StubbornPlugin()
    app = make_app({"tasks": armillary_tasks, "stubborn": plugin},
                   {"kernel": {"cancel_grace_seconds": 0.3},
                    "agents": {"default": {"strategy": "stubborn"}}})
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        created = await client.post("/v1/tasks", json={"task": "g"})
        assert created.status_code in (200, 201, 202), created.text
        task_id = created.json()["task_id"]
        await asyncio.wait_for(plugin.strategy.started.wait(), 5)
        with caplog.at_level(logging.WARNING, logger="armillary.runner"):
            began = time.monotonic()
            cancelled = await client.delete(f"/v1/tasks/{task_id}")
            took = time.monotonic() - began
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert took < 1.5  # answered before the strategy gave up (it needs 1.5 s)
        assert "did not stop within" in caplog.text
        await asyncio.wait_for(plugin.strategy.finished.wait(), 5)
        await asyncio.sleep(0.05)
        again = await client.get(f"/v1/tasks/{task_id}")
        assert again.json()["status"] == "cancelled"  # its late result changes nothing

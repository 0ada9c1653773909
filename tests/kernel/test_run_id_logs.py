"""Structured logs carry the run id in a strategy's task and in every task it starts
(the runner runs the task with `RUN_ID` set)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import armillary_tasks
import httpx

from armillary import RunContext, Strategy, hookimpl
from armillary._logging import JSONFormatter
from armillary.testing import make_app, serve_app

log = logging.getLogger("tests.run_id")


class Spawner(Strategy):
    name = "spawner"

    async def execute(self, ctx: RunContext) -> str:
        async def child(i: int) -> None:
            log.info("child %d working", i)

        await asyncio.gather(*(asyncio.create_task(child(i)) for i in range(3)))
        log.info("strategy done")
        return "ok"


class SpawnerPlugin:
    @hookimpl
    def register_strategies(self, register: Any) -> None:
        register(Spawner())


async def test_logs_from_a_strategy_and_its_tasks_carry_the_run_id() -> None:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JSONFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        app = make_app({"tasks": armillary_tasks, "spawner": SpawnerPlugin()},
                       {"agents": {"default": {"strategy": "spawner"}}})
        async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as c:
            done = (await c.post("/v1/tasks", json={"task": "go", "wait": True})).json()
    finally:
        log.removeHandler(handler)
    records = [json.loads(line) for line in lines]
    assert len(records) == 4
    assert {r["run_id"] for r in records} == {done["task_id"]}

"""Typed events: a run's events are checked against the declared types
(`register_event_types`), strictly in tests; and every event goes out on the firehose."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import armillary_tasks
import httpx
import pytest
from pydantic import BaseModel

from armillary import Event, RunContext, RunStatus, Strategy, hookimpl
from armillary._events import FIREHOSE
from armillary.testing import make_app, serve_app


class RollPayload(BaseModel):
    sides: int
    value: int


class Dice(Strategy):
    """Emits what its goal says: `roll` (declared), `bad-roll` (declared, payload does
    not fit), `mystery` (undeclared, twice)."""

    name = "dice"

    async def execute(self, ctx: RunContext) -> str | None:
        goal = ctx.run.goal
        if goal == "roll":
            await ctx.emit("dice.rolled", {"sides": 6, "value": 4})
        elif goal == "bad-roll":
            await ctx.emit("dice.rolled", {"sides": "many"})
        elif goal == "mystery":
            await ctx.emit("mystery", {"n": 1})
            await ctx.emit("mystery", {"n": 2})
        await ctx.emit("step", {"step_number": 1, "success": True})
        return goal


class DicePlugin:
    @hookimpl
    def register_strategies(self, register: Any) -> None:
        register(Dice())

    @hookimpl
    def register_event_types(self, register: Any) -> None:
        register("dice.rolled", RollPayload)


def dice_app(**kernel: Any) -> Any:
    return make_app({"tasks": armillary_tasks, "dice": DicePlugin()},
                    {"kernel": kernel, "agents": {"default": {"strategy": "dice"}}})


async def run(url: str, goal: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        done = await client.post("/v1/tasks", json={"task": goal, "wait": True})
        assert done.status_code == 200, done.text
        return done.json()  # type: ignore[no-any-return]


async def stored_types(app: Any, run_id: str) -> list[str]:
    return [e.type for e in await app.state.kernel.store.events(run_id)]


async def test_a_declared_event_that_fits_its_model_is_logged() -> None:
    app = dice_app()
    async with serve_app(app) as url:
        done = await run(url, "roll")
        assert done["status"] == "completed"
        events = await app.state.kernel.store.events(done["task_id"])
    rolled = [e for e in events if e.type == "dice.rolled"]
    assert [e.payload for e in rolled] == [{"sides": 6, "value": 4}]


async def test_strict_an_undeclared_event_type_fails_the_run_and_is_not_logged() -> None:
    app = dice_app()  # armillary.testing turns strict_events on
    assert app.state.kernel.config.kernel.strict_events is True
    async with serve_app(app) as url:
        done = await run(url, "mystery")
        types = await stored_types(app, done["task_id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "unknown_event_type"
    assert "'mystery'" in done["error"]["detail"]
    assert "mystery" not in types and types[-1] == "failed"


async def test_strict_a_payload_that_does_not_fit_fails_the_run_naming_model_and_field() -> None:
    app = dice_app()
    async with serve_app(app) as url:
        done = await run(url, "bad-roll")
        types = await stored_types(app, done["task_id"])
    assert done["error"]["code"] == "invalid_event_payload"
    detail = done["error"]["detail"]
    assert "RollPayload" in detail and "'dice'" in detail
    assert "sides" in detail and "value" in detail
    assert "dice.rolled" not in types


async def test_not_strict_undeclared_events_are_kept_and_warned_about_once_per_type(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="armillary")
    app = dice_app(strict_events=False)
    async with serve_app(app) as url:
        first = await run(url, "mystery")
        second = await run(url, "bad-roll")
        again = await run(url, "mystery")
        kept = [await stored_types(app, r["task_id"]) for r in (first, second, again)]
    assert [r["status"] for r in (first, second, again)] == ["completed"] * 3
    assert kept[0].count("mystery") == 2 and kept[2].count("mystery") == 2
    assert "dice.rolled" in kept[1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("'mystery' is not declared" in w for w in warnings) == 1
    assert sum("does not fit RollPayload" in w for w in warnings) == 1


async def test_the_builtins_declare_the_lifecycle_and_agent_event_types() -> None:
    async with serve_app(dice_app()) as url, httpx.AsyncClient(base_url=url) as client:
        plugins = {p["name"]: p for p in (await client.get("/v1/plugins")).json()["plugins"]}
    assert set(plugins["builtin:local_services"]["registered"]["event_types"]) == \
        {s.value for s in RunStatus}
    assert set(plugins["builtin:agent_events"]["registered"]["event_types"]) == {
        "message", "token", "tool_call", "plan_update", "step", "memory_summary", "log",
        "safety"}
    assert plugins["dice"]["registered"]["event_types"] == ["dice.rolled"]


async def test_the_firehose_carries_every_runs_events() -> None:
    app = dice_app()
    async with serve_app(app) as url:
        firehose = app.state.kernel.bus.subscribe(FIREHOSE)
        try:
            first, second = await asyncio.gather(run(url, "roll"), run(url, "plain"))
            seen: list[Event] = []
            ended: set[str] = set()
            while len(ended) < 2:
                event = await firehose.get(timeout=5)
                assert event is not None, f"the firehose went quiet after {seen}"
                seen.append(event)
                if event.type == "completed":
                    ended.add(event.run_id)
        finally:
            await firehose.close()
    by_run = {rid: [e.type for e in seen if e.run_id == rid]
              for rid in (first["task_id"], second["task_id"])}
    assert by_run[first["task_id"]] == ["queued", "running", "dice.rolled", "step", "completed"]
    assert by_run[second["task_id"]] == ["queued", "running", "step", "completed"]
    # the same events, seqs and all, as the runs' own logs
    for rid, types in by_run.items():
        assert types == await stored_types(app, rid)

"""Registration hooks are called in hook order: `tryfirst` plugins first, then the rest,
then `trylast` ones, then the built-ins, each group in load order."""

from __future__ import annotations

from typing import Any

import armillary_tasks
import httpx

from armillary import RunContext, SafetyCheck, Strategy, Verdict, hookimpl
from armillary.testing import make_app, make_kernel, serve_app


class Mark(SafetyCheck):
    """Appends its name to the input: the text says which checks ran, in what order."""

    stages = frozenset({"input"})

    def __init__(self, name: str) -> None:
        self.name = name

    async def check(self, text: str, *, stage: Any, context: Any) -> Verdict:
        return Verdict(check=self.name, redacted=f"{text}>{self.name}")


class CheckedGoal(Strategy):
    """Answers with its goal after the input stage: the checks' trail."""

    name = "checked_goal"

    async def execute(self, ctx: RunContext) -> str | None:
        return await ctx.check_input(ctx.run.goal)


def marking(name: str, **marker: bool) -> object:
    class Plugin:
        @hookimpl(**marker)
        def register_safety_checks(self, register: Any) -> None:
            register(Mark(name))

    return Plugin()


class Strategies:
    @hookimpl
    def register_strategies(self, register: Any) -> None:
        register(CheckedGoal())


async def test_a_tryfirst_plugins_check_runs_first_and_a_trylast_ones_last() -> None:
    # load order: plain, lazy (trylast), eager (tryfirst), also-plain
    app = make_app({"tasks": armillary_tasks, "strategies": Strategies(),
                    "plain": marking("plain"), "lazy": marking("lazy", trylast=True),
                    "eager": marking("eager", tryfirst=True), "also": marking("also")},
                   config={"agents": {"default": {"strategy": "checked_goal"}}})
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        done = await client.post("/v1/tasks", json={"task": "goal", "wait": True})
    assert done.json()["final_answer"] == "goal>eager>plain>also>lazy"


def test_registrations_of_each_kind_follow_hook_order() -> None:
    kernel = make_kernel({"plain": marking("plain"), "eager": marking("eager", tryfirst=True)})
    assert [c.plugin for c in kernel.registry.safety_checks] == ["eager", "plain"]

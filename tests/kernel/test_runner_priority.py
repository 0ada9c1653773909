"""The runner's queue: a higher `Run.priority` starts first; equal priorities first come,
first served — also when runs are queued again at startup or on resume."""

from __future__ import annotations

import asyncio

from armillary._models import Run, RunStatus
from armillary.testing import ProviderPlugin, ScriptedProvider, Turn, make_kernel


async def test_higher_priority_runs_start_first_and_ties_keep_their_order() -> None:
    provider = ScriptedProvider([Turn(text="first", delay=0.3)] + ["ok"] * 5)
    kernel = make_kernel({"scripted": ProviderPlugin(provider)},
                         config={"kernel": {"max_concurrent_runs": 1}})
    await kernel.start()
    try:
        busy = await kernel.runner.submit(Run(goal="busy"))
        for _ in range(100):
            if provider.requests:
                break
            await asyncio.sleep(0.01)
        queued = [await kernel.runner.submit(Run(goal=goal, priority=priority))
                  for goal, priority in (("low", 0), ("normal-1", 1), ("urgent", 3),
                                         ("normal-2", 1), ("high", 2))]
        for run in [busy, *queued]:
            done = await kernel.runner.wait(run.id, timeout=10)
            assert done.status is RunStatus.COMPLETED
        order = [r.messages[-1].content for r in provider.requests]
        assert order == ["busy", "urgent", "high", "normal-1", "normal-2", "low"]
    finally:
        await kernel.stop()

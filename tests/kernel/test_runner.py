"""The local runner: lifecycle, concurrency limit, cancel, pause/resume, stop, wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from armillary.errors import Conflict, NotFound, ProviderUnavailable
from armillary.kernel import Kernel
from armillary.models import Run, RunStatus, ToolCall
from armillary.testing import ProviderPlugin, ScriptedProvider, ToolsPlugin, Turn, make_kernel
from armillary.tools import tool


@tool
async def slow(seconds: float) -> str:
    """Sleep, then say so."""
    await asyncio.sleep(seconds)
    return "slept"


async def started(provider: ScriptedProvider, config: dict[str, Any] | None = None
                  ) -> Kernel:
    kernel = make_kernel({"scripted": ProviderPlugin(provider), "slow": ToolsPlugin(slow)},
                         config=config)
    await kernel.start()
    return kernel


@pytest.fixture
async def kernel_factory() -> AsyncIterator[Any]:
    kernels: list[Kernel] = []

    async def factory(provider: ScriptedProvider, config: dict[str, Any] | None = None
                      ) -> Kernel:
        kernel = await started(provider, config)
        kernels.append(kernel)
        return kernel

    yield factory
    for kernel in kernels:
        await kernel.stop()


async def until(predicate: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def types_of(kernel: Kernel, run_id: str) -> list[str]:
    return [e.type for e in await kernel.store.events(run_id)]


async def test_a_run_goes_queued_running_completed_with_its_answer(kernel_factory: Any) -> None:
    kernel = await kernel_factory(ScriptedProvider(["the answer is 4"]))
    run = await kernel.runner.submit(Run(goal="2+2?"))
    assert run.status is RunStatus.QUEUED
    done = await kernel.runner.wait(run.id, timeout=5)
    assert done.status is RunStatus.COMPLETED
    assert done.result == "the answer is 4"
    assert done.steps_taken == 1
    kinds = await types_of(kernel, run.id)
    assert kinds[:2] == ["queued", "running"]
    assert kinds[-1] == "completed"
    assert "step" in kinds and "message" in kinds
    seqs = [e.seq for e in await kernel.store.events(run.id)]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_runs_beyond_the_concurrency_limit_wait_queued(kernel_factory: Any) -> None:
    provider = ScriptedProvider([Turn(text="a b c d e f g h", delay=0.05)])
    kernel = await kernel_factory(provider, {"kernel": {"max_concurrent_runs": 2}})
    runs = [await kernel.runner.submit(Run(goal=f"g{i}")) for i in range(5)]
    await asyncio.sleep(0.1)
    statuses = [(await kernel.store.get_run(r.id)).status for r in runs]  # type: ignore[union-attr]
    assert statuses.count(RunStatus.RUNNING) == 2
    assert statuses.count(RunStatus.QUEUED) == 3
    for r in runs:
        assert (await kernel.runner.wait(r.id, timeout=10)).status is RunStatus.COMPLETED


async def test_cancel_stops_the_inflight_provider_stream(kernel_factory: Any) -> None:
    provider = ScriptedProvider([Turn(text=" ".join(["word"] * 200), delay=0.05)])
    kernel = await kernel_factory(provider)
    run = await kernel.runner.submit(Run(goal="talk a lot"))
    await until(lambda: provider.open_streams > 0)
    cancelled = await kernel.runner.cancel(run.id)
    assert cancelled.status is RunStatus.CANCELLED
    assert provider.open_streams == 0
    assert (await types_of(kernel, run.id))[-1] == "cancelled"


async def test_cancel_abandons_inflight_tool_calls_at_once(kernel_factory: Any) -> None:
    provider = ScriptedProvider([Turn(tool_calls=[ToolCall(name="slow",
                                                           arguments={"seconds": 30})])])
    kernel = await kernel_factory(provider)
    run = await kernel.runner.submit(Run(goal="wait"))
    await until(lambda: len(provider.requests) > 0)
    await asyncio.sleep(0.05)
    result = await asyncio.wait_for(kernel.runner.cancel(run.id), 2)
    assert result.status is RunStatus.CANCELLED


async def test_cancelling_a_queued_run_never_starts_it(kernel_factory: Any) -> None:
    provider = ScriptedProvider([Turn(text="x y z", delay=0.2)])
    kernel = await kernel_factory(provider, {"kernel": {"max_concurrent_runs": 1}})
    first = await kernel.runner.submit(Run(goal="first"))
    second = await kernel.runner.submit(Run(goal="second"))
    assert (await kernel.runner.cancel(second.id)).status is RunStatus.CANCELLED
    await kernel.runner.wait(first.id, timeout=5)
    assert await types_of(kernel, second.id) == ["queued", "cancelled"]
    assert len(provider.requests) == 1


async def test_pause_holds_the_run_at_the_next_step_and_resume_continues(
        kernel_factory: Any) -> None:
    calls = [ToolCall(name="slow", arguments={"seconds": 0.1})]
    provider = ScriptedProvider([Turn(tool_calls=calls), Turn(tool_calls=calls), "done"])
    kernel = await kernel_factory(provider)
    run = await kernel.runner.submit(Run(goal="two steps"))
    await until(lambda: len(provider.requests) > 0)
    paused = await kernel.runner.pause(run.id)
    assert paused.status is RunStatus.PAUSED
    await asyncio.sleep(0.4)
    assert len(provider.requests) == 1  # the first step finished; the second did not start
    assert (await kernel.store.get_run(run.id)).steps_taken == 1  # type: ignore[union-attr]
    resumed = await kernel.runner.resume(run.id)
    assert resumed.status is RunStatus.RUNNING
    done = await kernel.runner.wait(run.id, timeout=5)
    assert done.status is RunStatus.COMPLETED and done.result == "done"


async def test_stop_ends_the_run_with_status_stopped(kernel_factory: Any) -> None:
    provider = ScriptedProvider([Turn(text=" ".join(["w"] * 100), delay=0.05)])
    kernel = await kernel_factory(provider)
    run = await kernel.runner.submit(Run(goal="g"))
    await until(lambda: provider.open_streams > 0)
    assert (await kernel.runner.stop_run(run.id)).status is RunStatus.STOPPED


async def test_control_on_a_finished_run_is_a_conflict_naming_its_status(
        kernel_factory: Any) -> None:
    kernel = await kernel_factory(ScriptedProvider(["fine"]))
    run = await kernel.runner.submit(Run(goal="g"))
    await kernel.runner.wait(run.id, timeout=5)
    for action in (kernel.runner.cancel, kernel.runner.pause, kernel.runner.stop_run):
        with pytest.raises(Conflict) as info:
            await action(run.id)
        assert info.value.extra["status"] == "completed"


async def test_unknown_agent_is_refused_at_submit(kernel_factory: Any) -> None:
    kernel = await kernel_factory(ScriptedProvider(["x"]))
    with pytest.raises(NotFound) as info:
        await kernel.runner.submit(Run(goal="g", agent="nobody"))
    assert info.value.code == "agent_not_found"


async def test_provider_down_fails_the_run_with_the_providers_code(kernel_factory: Any) -> None:
    provider = ScriptedProvider([Turn(error=ProviderUnavailable("connection refused"))])
    kernel = await kernel_factory(provider)
    run = await kernel.runner.submit(Run(goal="g"))
    done = await kernel.runner.wait(run.id, timeout=5)
    assert done.status is RunStatus.FAILED
    assert done.error is not None and done.error.code == "provider_unavailable"
    last = (await kernel.store.events(run.id))[-1]
    assert last.type == "failed" and last.payload["error"]["code"] == "provider_unavailable"


async def test_provider_failing_mid_stream_fails_the_run(kernel_factory: Any) -> None:
    provider = ScriptedProvider([Turn(text="a b c d", fail_after=2)])
    kernel = await kernel_factory(provider)
    run = await kernel.runner.submit(Run(goal="g"))
    done = await kernel.runner.wait(run.id, timeout=5)
    assert done.status is RunStatus.FAILED and done.error is not None
    assert done.error.code == "provider_error"


async def test_stopping_the_runner_marks_inflight_runs_interrupted(kernel_factory: Any) -> None:
    provider = ScriptedProvider([Turn(text=" ".join(["w"] * 100), delay=0.05)])
    kernel = await started(provider)
    run = await kernel.runner.submit(Run(goal="g"))
    await until(lambda: provider.open_streams > 0)
    store = kernel.store
    await kernel.runner.stop()
    stored = await store.get_run(run.id)
    assert stored is not None and stored.status is RunStatus.INTERRUPTED
    await kernel.stop()


async def test_pruning_removes_finished_runs_beyond_the_kept_count(kernel_factory: Any) -> None:
    kernel = await kernel_factory(ScriptedProvider(["ok"]), {"kernel": {"keep_finished_runs": 2}})
    runs = [await kernel.runner.submit(Run(goal=f"g{i}")) for i in range(4)]
    for r in runs:
        await kernel.runner.wait(r.id, timeout=5)
    removed = await kernel.store.prune(keep=2)
    assert removed == 2
    assert await kernel.store.count_runs() == 2

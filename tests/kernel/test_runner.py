"""The local runner: lifecycle, concurrency limit, cancel, pause/resume, stop, wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from armillary._errors import Conflict, NotFound, ProviderUnavailable
from armillary._kernel import Kernel
from armillary._models import ChatChunk, ChatRequest, Run, RunStatus, ToolCall
from armillary._tools import tool
from armillary.testing import ProviderPlugin, ScriptedProvider, ToolsPlugin, Turn, make_kernel


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


class SlowToClose(ScriptedProvider):
    """Streams one chunk, then waits on the model; closing the stream takes a while (as
    closing an HTTP connection awaits) and records how far it got."""

    def __init__(self) -> None:
        super().__init__()
        self.close_started = self.close_finished = 0

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self.requests.append(request)
        self.open_streams += 1
        try:
            yield ChatChunk(delta="thinking ")
            await asyncio.sleep(30)
            yield ChatChunk(done=True)
        finally:
            self.close_started += 1
            await asyncio.sleep(0.1)
            self.close_finished += 1
            self.open_streams -= 1
            self.closed_streams += 1


@pytest.mark.parametrize(("end", "status"), [("cancel", RunStatus.CANCELLED),
                                             ("stop_run", RunStatus.STOPPED),
                                             ("shutdown", RunStatus.INTERRUPTED)])
async def test_ending_a_run_cancels_its_task_once_and_its_stream_closes_to_the_end(
        end: str, status: RunStatus) -> None:
    # a second cancel would land in the stream's close and cut it short (with a real
    # provider: the connection left open, the model generating on for nobody)
    provider = SlowToClose()
    kernel = await started(provider)
    try:
        run = await kernel.runner.submit(Run(goal="g"))
        await until(lambda: provider.open_streams == 1)
        await asyncio.sleep(0.05)  # the strategy is waiting on the model
        task = kernel.runner._handles[run.id].task  # type: ignore[attr-defined]
        assert task is not None
        store = kernel.store
        if end == "shutdown":
            await kernel.runner.stop()
        else:
            ended = await getattr(kernel.runner, end)(run.id)
            assert ended.status is status
        assert task.done() and task.cancelling() == 1  # cancel() was called once
        assert (provider.close_started, provider.close_finished) == (1, 1)
        assert provider.open_streams == 0
        stored = await store.get_run(run.id)
        assert stored is not None and stored.status is status
        assert [e.type for e in await store.events(run.id)][-1] == status.value
    finally:
        await kernel.stop()


async def test_the_runner_prunes_finished_runs_beyond_keep_finished_runs_as_it_goes(
        kernel_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("armillary._local_runner.PRUNE_INTERVAL", 0.05)
    provider = ScriptedProvider(["ok", "ok", "ok", "ok", Turn(text="slow", delay=0.5)])
    kernel = await kernel_factory(provider, {"kernel": {"keep_finished_runs": 2,
                                                        "max_concurrent_runs": 1}})
    runs = [await kernel.runner.submit(Run(goal=f"g{i}")) for i in range(4)]
    for r in runs:
        await kernel.runner.wait(r.id, timeout=5)
    live = await kernel.runner.submit(Run(goal="still running"))
    await until(lambda: provider.open_streams > 0)
    for _ in range(200):  # the runner's own pruning, on its interval: no prune() call here
        if await kernel.store.count_runs() == 3:
            break
        await asyncio.sleep(0.02)
    kept = {r.id for r in await kernel.store.list_runs()}
    assert kept == {runs[2].id, runs[3].id, live.id}  # the newest two finished, and the live
    assert await kernel.store.events(runs[0].id) == []


async def test_the_runner_prunes_runs_finished_longer_ago_than_the_ttl(
        kernel_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("armillary._local_runner.PRUNE_INTERVAL", 0.05)
    kernel = await kernel_factory(ScriptedProvider(["ok"]), {"kernel": {
        "keep_finished_runs": None, "finished_run_ttl_seconds": 600}})
    old = await kernel.runner.submit(Run(goal="old"))
    await kernel.runner.wait(old.id, timeout=5)
    await kernel.store.update_run(old.id, finished_at=time.time() - 3600)  # an hour ago
    fresh = await kernel.runner.submit(Run(goal="fresh"))
    await kernel.runner.wait(fresh.id, timeout=5)
    for _ in range(200):
        if await kernel.store.get_run(old.id) is None:
            break
        await asyncio.sleep(0.02)
    assert await kernel.store.get_run(old.id) is None
    assert await kernel.store.get_run(fresh.id) is not None  # finished within the ttl


# --- races between cancel/stop and the run starting or completing -------------------------

END_TYPES = {"completed", "failed", "cancelled", "stopped", "interrupted"}


def goal_of(request: Any) -> str:
    return next(m.content for m in request.messages if m.role == "user")


async def check_single_end(kernel: Kernel, run_id: str, cancelled: bool) -> None:
    """Exactly one end event, last in the log, agreeing with the stored run and with what
    the cancel answered."""
    events = await kernel.store.events(run_id)
    ends = [e for e in events if e.type in END_TYPES]
    assert len(ends) == 1 and events[-1] is ends[-1], [e.type for e in events]
    run = await kernel.store.get_run(run_id)
    assert run is not None and run.status.value == ends[0].type
    if cancelled:
        assert run.status is RunStatus.CANCELLED and run.result is None
    else:  # the cancel lost to completion: 409, and the answer stands
        assert run.status is RunStatus.COMPLETED
        assert run.result == "done" and ends[0].payload["result"] == "done"


async def test_cancel_racing_the_start_of_a_run_ends_it_once_and_nothing_runs_after(
        kernel_factory: Any) -> None:
    provider = ScriptedProvider(["done"])
    kernel = await kernel_factory(provider, {"kernel": {"max_concurrent_runs": 2}})
    outcomes: list[tuple[str, str, bool]] = []
    for i in range(48):
        run = await kernel.runner.submit(Run(goal=f"race {i}"))
        for _ in range(i % 16):  # cancel after 0…15 turns of the loop: every await in between
            await asyncio.sleep(0)
        try:
            answered = await kernel.runner.cancel(run.id)
        except Conflict as exc:
            assert exc.extra["status"] == "completed"
            outcomes.append((run.id, run.goal, False))
        else:
            assert answered.status is RunStatus.CANCELLED
            outcomes.append((run.id, run.goal, True))
            asked = sum(goal_of(r) == run.goal for r in provider.requests)
            await asyncio.sleep(0.02)  # a run that went on after its cancel would ask again
            assert sum(goal_of(r) == run.goal for r in provider.requests) == asked
    for run_id, _, cancelled in outcomes:
        await kernel.runner.wait(run_id, timeout=5)
        await check_single_end(kernel, run_id, cancelled)
    assert any(c for _, _, c in outcomes)


async def test_cancel_racing_completion_either_wins_cleanly_or_is_a_conflict(
        kernel_factory: Any) -> None:
    provider = ScriptedProvider(["done"])
    kernel = await kernel_factory(provider)
    outcomes: list[tuple[str, bool]] = []
    for i in range(40):
        run = await kernel.runner.submit(Run(goal=f"finish {i}"))
        # wait for the final step event: the strategy is returning its answer now
        for _ in range(10_000):
            if "step" in await types_of(kernel, run.id):
                break
            await asyncio.sleep(0)
        for _ in range(i % 10):
            await asyncio.sleep(0)
        try:
            answered = await kernel.runner.cancel(run.id)
        except Conflict as exc:
            assert exc.extra["status"] == "completed"
            outcomes.append((run.id, False))
        else:
            assert answered.status is RunStatus.CANCELLED
            outcomes.append((run.id, True))
    for run_id, cancelled in outcomes:
        await kernel.runner.wait(run_id, timeout=5)
        await check_single_end(kernel, run_id, cancelled)
    assert not all(c for _, c in outcomes)  # some cancels came too late: 409, not a rewrite


async def test_two_cancels_at_once_one_wins_and_the_other_conflicts(
        kernel_factory: Any) -> None:
    provider = ScriptedProvider([Turn(text=" ".join(["w"] * 100), delay=0.05)])
    kernel = await kernel_factory(provider)
    run = await kernel.runner.submit(Run(goal="g"))
    await until(lambda: provider.open_streams > 0)
    results = await asyncio.gather(kernel.runner.cancel(run.id), kernel.runner.stop_run(run.id),
                                   return_exceptions=True)
    winners = [r for r in results if isinstance(r, Run)]
    assert len(winners) == 1 and any(isinstance(r, Conflict) for r in results)
    events = await kernel.store.events(run.id)
    assert [e.type for e in events if e.type in END_TYPES] == [winners[0].status.value]


# --- pausing queued runs ------------------------------------------------------------------

async def test_runs_paused_while_queued_hold_no_worker_and_run_when_resumed(
        kernel_factory: Any) -> None:
    provider = ScriptedProvider([Turn(text="a b c", delay=0.05)])
    kernel = await kernel_factory(provider, {"kernel": {"max_concurrent_runs": 2}})
    busy = [await kernel.runner.submit(Run(goal=f"busy {i}")) for i in range(2)]
    parked = [await kernel.runner.submit(Run(goal=f"parked {i}")) for i in range(2)]
    for run in parked:
        assert (await kernel.runner.pause(run.id)).status is RunStatus.PAUSED
    for run in busy:  # the workers come free and pass over the paused runs
        assert (await kernel.runner.wait(run.id, timeout=5)).status is RunStatus.COMPLETED
    later = await kernel.runner.submit(Run(goal="later"))
    assert (await kernel.runner.wait(later.id, timeout=5)).status is RunStatus.COMPLETED
    for run in parked:
        stored = await kernel.store.get_run(run.id)
        assert stored is not None and stored.status is RunStatus.PAUSED
        assert stored.started_at is None
        assert not any(goal_of(r) == run.goal for r in provider.requests)
    for run in parked:
        assert (await kernel.runner.resume(run.id)).status is RunStatus.QUEUED
    for run in parked:
        done = await kernel.runner.wait(run.id, timeout=5)
        assert done.status is RunStatus.COMPLETED and done.result == "a b c"
        kinds = await types_of(kernel, run.id)
        assert kinds[:4] == ["queued", "paused", "queued", "running"]


async def test_a_queued_run_paused_and_resumed_before_a_worker_came_runs_once(
        kernel_factory: Any) -> None:
    provider = ScriptedProvider([Turn(text="x y", delay=0.05)])
    kernel = await kernel_factory(provider, {"kernel": {"max_concurrent_runs": 1}})
    first = await kernel.runner.submit(Run(goal="first"))
    second = await kernel.runner.submit(Run(goal="second"))
    await kernel.runner.pause(second.id)
    await kernel.runner.resume(second.id)  # still in the queue: not queued twice
    for run in (first, second):
        assert (await kernel.runner.wait(run.id, timeout=5)).status is RunStatus.COMPLETED
    assert sum(goal_of(r) == "second" for r in provider.requests) == 1


async def test_a_run_paused_before_it_started_stays_paused_across_a_restart(
        tmp_path: Any) -> None:
    config = {"kernel": {"max_concurrent_runs": 1,
                         "store": f"sqlite:///{tmp_path / 'runs.db'}"}}
    provider = ScriptedProvider([Turn(text=" ".join(["w"] * 200), delay=0.05)])
    first = await started(provider, config)
    busy = await first.runner.submit(Run(goal="busy"))
    waiting = await first.runner.submit(Run(goal="waiting"))
    await until(lambda: provider.open_streams > 0)
    await first.runner.pause(waiting.id)
    await first.stop()

    provider = ScriptedProvider(["after the restart"])
    again = await started(provider, config)
    try:
        interrupted = await again.store.get_run(busy.id)
        assert interrupted is not None and interrupted.status is RunStatus.INTERRUPTED
        kept = await again.store.get_run(waiting.id)
        assert kept is not None and kept.status is RunStatus.PAUSED
        assert "interrupted" not in await types_of(again, waiting.id)
        await again.runner.resume(waiting.id)
        done = await again.runner.wait(waiting.id, timeout=5)
        assert done.status is RunStatus.COMPLETED and done.result == "after the restart"
    finally:
        await again.stop()


async def test_a_cancel_may_say_why_with_its_own_error_code(kernel_factory: Any) -> None:
    from armillary._models import ErrorInfo

    provider = ScriptedProvider([Turn(text="slow", delay=5)])
    kernel = await kernel_factory(provider)
    run = await kernel.runner.submit(Run(goal="g"))
    await until(lambda: provider.requests)
    ended = await kernel.runner.cancel(run.id, error=ErrorInfo(detail="too slow",
                                                               code="task_timeout"))
    assert ended.status is RunStatus.CANCELLED
    assert ended.error is not None and ended.error.code == "task_timeout"
    events = await kernel.store.events(run.id)
    assert events[-1].type == "cancelled"
    assert events[-1].payload["error"]["code"] == "task_timeout"

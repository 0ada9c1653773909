"""`LocalRunner`: runs strategies as asyncio tasks in this process.

A fixed pool of `max_concurrent_runs` workers takes run ids from a FIFO queue, so the
rest wait queued. Cancel and stop cancel the strategy's task at once (which closes the
provider stream and abandons tool calls); pause is cooperative at `ctx.checkpoint()`.

Restart policy: runs that were `running` or `paused` when a previous process died (or
shut down) are marked `interrupted` with an `interrupted` event, never resumed, since a
half-done step cannot be replayed safely; runs still `queued` never started and are queued
again. Finished runs are pruned by age and count (`[kernel] finished_run_ttl_seconds`,
`keep_finished_runs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from armillary.errors import ArmillaryError, Conflict, NotFound
from armillary.models import AgentSpec, ErrorInfo, Event, Run, RunStatus
from armillary.providers import Provider
from armillary.runner import Runner
from armillary.safety import SafetyPipeline
from armillary.strategies import RunContext, Strategy
from armillary.tools import Tool

if TYPE_CHECKING:
    from armillary.kernel import Kernel

log = logging.getLogger("armillary.runner")

PRUNE_INTERVAL = 300.0


@dataclass
class _Handle:
    run_id: str
    #: set while the run may proceed; cleared by pause
    proceed: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[str | None] | None = None
    #: the status a cancel/stop asked for
    end_status: RunStatus | None = None
    started: bool = False

    def __post_init__(self) -> None:
        self.proceed.set()


class LocalRunContext(RunContext):
    def __init__(self, runner: LocalRunner, run: Run, agent: AgentSpec, handle: _Handle) -> None:
        self.run = run
        self.agent = agent
        self.safety: SafetyPipeline = runner.kernel.safety
        self._runner = runner
        self._handle = handle

    async def emit(self, type: str, payload: dict[str, Any]) -> Event:
        event = await self._runner.emit(self.run.id, type, payload)
        if type == "step":
            steps = int(payload.get("step_number", self.run.steps_taken + 1))
            self.run = await self._runner.kernel.store.update_run(self.run.id, steps_taken=steps)
        return event

    async def checkpoint(self) -> None:
        await self._handle.proceed.wait()

    def provider(self, name: str | None = None) -> Provider:
        return self._runner.kernel.provider(name or self.agent.provider)

    def tools(self) -> list[Tool]:
        return self._runner.kernel.tools_for(self.agent)


class LocalRunner(Runner):
    def __init__(self, kernel: Kernel, *, prune_interval: float = PRUNE_INTERVAL) -> None:
        self.kernel = kernel
        self.prune_interval = prune_interval
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._handles: dict[str, _Handle] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        store = self.kernel.store
        stale = [RunStatus.RUNNING, RunStatus.PAUSED]
        for run in await store.list_runs(status=stale, limit=await store.count_runs(status=stale)):
            await self._finish(run.id, RunStatus.INTERRUPTED, error=ErrorInfo(
                detail="the server stopped while this run was in progress", code="interrupted"))
        queued = await store.list_runs(status=[RunStatus.QUEUED],
                                       limit=await store.count_runs(status=[RunStatus.QUEUED]))
        for run in sorted(queued, key=lambda r: r.created_at):
            self._enqueue(run.id)
        await self.prune()
        self._tasks = [asyncio.create_task(self._worker(), name=f"armillary-worker-{i}")
                       for i in range(self.kernel.config.kernel.max_concurrent_runs)]
        self._tasks.append(asyncio.create_task(self._prune_loop(), name="armillary-pruner"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for handle in list(self._handles.values()):
            if handle.started and not handle.done.is_set():
                await self._finish(handle.run_id, RunStatus.INTERRUPTED, error=ErrorInfo(
                    detail="the server shut down while this run was in progress",
                    code="interrupted"))
        self._handles.clear()

    async def prune(self) -> int:
        settings = self.kernel.config.kernel
        older = (time.time() - settings.finished_run_ttl_seconds
                 if settings.finished_run_ttl_seconds is not None else None)
        if older is None and settings.keep_finished_runs is None:
            return 0
        return await self.kernel.store.prune(older_than=older, keep=settings.keep_finished_runs)

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(self.prune_interval)
            try:
                await self.prune()
            except Exception:
                log.exception("pruning finished runs failed")

    # --- events and status ---------------------------------------------------------

    async def emit(self, run_id: str, type: str, payload: dict[str, Any]) -> Event:
        """Append an event to the run's log, then publish it (in that order, so a
        subscriber that replays the log after subscribing misses nothing)."""
        event = await self.kernel.store.append_event(run_id, type, payload)
        await self.kernel.bus.publish(run_id, event)
        return event

    async def _set_status(self, run_id: str, status: RunStatus, payload: dict[str, Any],
                          **changes: Any) -> Run:
        run = await self.kernel.store.update_run(run_id, status=status, **changes)
        await self.emit(run_id, status.value, {"status": status.value, **payload})
        return run

    async def _finish(self, run_id: str, status: RunStatus, *, result: str | None = None,
                      error: ErrorInfo | None = None) -> Run:
        current = await self.kernel.store.get_run(run_id)
        steps = current.steps_taken if current else 0
        run = await self._set_status(
            run_id, status,
            {"result": result, "error": error.model_dump() if error else None,
             "steps_taken": steps},
            result=result, error=error, finished_at=time.time())
        handle = self._handles.pop(run_id, None)
        if handle is not None:
            handle.done.set()
        return run

    # --- submission and execution --------------------------------------------------

    def _enqueue(self, run_id: str) -> None:
        self._handles[run_id] = _Handle(run_id)
        self._queue.put_nowait(run_id)

    def _strategy(self, name: str) -> Strategy:
        entry = self.kernel.registry.strategies.get(name)
        if entry is None:
            raise NotFound(f"no strategy named {name!r} (have: "
                           f"{', '.join(self.kernel.registry.strategies) or 'none'})",
                           code="strategy_not_found")
        return entry[1]

    async def submit(self, run: Run) -> Run:
        self.kernel.agent(run.agent)  # raises agent_not_found
        self._strategy(run.strategy)
        run = run.model_copy(update={"status": RunStatus.QUEUED})
        stored = await self.kernel.store.create_run(run)
        await self.emit(run.id, RunStatus.QUEUED.value, {
            "status": "queued", "goal": run.goal, "agent": run.agent,
            "strategy": run.strategy, "max_steps": run.max_steps})
        self._enqueue(run.id)
        return stored

    async def _worker(self) -> None:
        while True:
            run_id = await self._queue.get()
            handle = self._handles.get(run_id)
            if handle is None or handle.end_status is not None:
                continue
            try:
                await self._execute(handle)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("run %s: the runner failed", run_id)
                if not handle.done.is_set():
                    await self._finish(run_id, RunStatus.FAILED, error=ErrorInfo(
                        detail="the runner failed", code="internal_error"))

    async def _execute(self, handle: _Handle) -> None:
        store = self.kernel.store
        run = await store.get_run(handle.run_id)
        if run is None or run.status.finished or handle.end_status is not None:
            return
        try:
            agent = self.kernel.agent(run.agent)
            strategy = self._strategy(run.strategy)
        except ArmillaryError as exc:
            await self._finish(run.id, RunStatus.FAILED,
                               error=ErrorInfo(detail=exc.detail, code=exc.code))
            return
        handle.started = True
        if handle.proceed.is_set():
            run = await self._set_status(run.id, RunStatus.RUNNING, {}, started_at=time.time())
        else:  # paused while queued: it starts, and waits at its first checkpoint
            run = await store.update_run(run.id, started_at=time.time())
        ctx = LocalRunContext(self, run, agent, handle)
        handle.task = asyncio.create_task(strategy.execute(ctx), name=f"armillary-run-{run.id}")
        try:
            result = await handle.task
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if handle.end_status is None or (task is not None and task.cancelling()):
                handle.task.cancel()
                raise
            await self._finish(run.id, handle.end_status, error=ErrorInfo(
                detail=f"the run was {handle.end_status.value}", code=handle.end_status.value))
        except Exception as exc:
            if handle.end_status is not None:  # failed while being cancelled: still cancelled
                await self._finish(run.id, handle.end_status, error=ErrorInfo(
                    detail=f"the run was {handle.end_status.value}",
                    code=handle.end_status.value))
            elif isinstance(exc, ArmillaryError):
                await self._finish(run.id, RunStatus.FAILED,
                                   error=ErrorInfo(detail=exc.detail, code=exc.code))
            else:
                log.exception("run %s: strategy %s raised", run.id, run.strategy)
                await self._finish(run.id, RunStatus.FAILED, error=ErrorInfo(
                    detail=f"{type(exc).__name__}: {exc}", code="internal_error"))
        else:
            if handle.end_status is not None:
                await self._finish(run.id, handle.end_status, result=result, error=ErrorInfo(
                    detail=f"the run was {handle.end_status.value}",
                    code=handle.end_status.value))
            else:
                await self._finish(run.id, RunStatus.COMPLETED, result=result)

    # --- control -------------------------------------------------------------------

    async def _controllable(self, run_id: str) -> tuple[Run, _Handle | None]:
        run = await self.kernel.store.get_run(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}", code="run_not_found")
        if run.status.finished:
            raise Conflict(f"run {run_id!r} is already {run.status.value}",
                           code="run_finished", extra={"status": run.status.value})
        return run, self._handles.get(run_id)

    async def _end(self, run_id: str, status: RunStatus) -> Run:
        run, handle = await self._controllable(run_id)
        if handle is None:  # not owned by this process (e.g. left by another worker)
            return await self._finish(run_id, status, error=ErrorInfo(
                detail=f"the run was {status.value}", code=status.value))
        handle.end_status = status
        if handle.task is not None and not handle.task.done():
            handle.task.cancel()
            await handle.done.wait()
        elif not handle.done.is_set():
            await self._finish(run_id, status, error=ErrorInfo(
                detail=f"the run was {status.value}", code=status.value))
        final = await self.kernel.store.get_run(run_id)
        return final or run

    async def cancel(self, run_id: str) -> Run:
        return await self._end(run_id, RunStatus.CANCELLED)

    async def stop_run(self, run_id: str) -> Run:
        return await self._end(run_id, RunStatus.STOPPED)

    async def pause(self, run_id: str) -> Run:
        run, handle = await self._controllable(run_id)
        if run.status is RunStatus.PAUSED or handle is None:
            return run
        handle.proceed.clear()
        return await self._set_status(run_id, RunStatus.PAUSED,
                                      {"detail": "pauses at the next step boundary"})

    async def resume(self, run_id: str) -> Run:
        run, handle = await self._controllable(run_id)
        if run.status is not RunStatus.PAUSED or handle is None:
            return run
        handle.proceed.set()
        status = RunStatus.RUNNING if handle.started else RunStatus.QUEUED
        return await self._set_status(run_id, status, {"resumed": True})

    async def wait(self, run_id: str, timeout: float | None = None) -> Run:
        handle = self._handles.get(run_id)
        if handle is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(handle.done.wait(), timeout)
        run = await self.kernel.store.get_run(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}", code="run_not_found")
        return run

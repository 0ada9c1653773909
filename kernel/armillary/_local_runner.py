"""`LocalRunner`: runs strategies as asyncio tasks in this process.

A fixed pool of `max_concurrent_runs` workers takes run ids from a FIFO queue, so the
rest wait queued. Cancel and stop cancel the strategy's task at once (which closes the
provider stream and abandons tool calls); pause is cooperative at `ctx.checkpoint()`.
The task is cancelled exactly once (`_interrupt`), and the end is written only after its
cleanup ran to the end: a second cancel would land in that cleanup (the provider stream's
close) and cut it short, leaving the model generating upstream for nobody.

Restart policy: runs that were `running` or `paused` when a previous process died (or
shut down) are marked `interrupted` with an `interrupted` event, never resumed, since a
half-done step cannot be replayed safely; runs still `queued` never started and are queued
again, and runs paused before they started stay paused (parked) until resumed.

A run paused while queued is parked: it holds no worker, and resuming queues it again. A
running run that is paused keeps its worker. Each run ends exactly once: see `_claim`.
Finished runs are pruned by age and count (`[kernel] finished_run_ttl_seconds`,
`keep_finished_runs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError

from armillary._errors import ArmillaryError, Conflict, NotFound
from armillary._events import FIREHOSE
from armillary._guard import Guard
from armillary._models import (
    _PRINCIPAL,
    AgentSpec,
    ErrorInfo,
    Event,
    Principal,
    Run,
    RunStatus,
    Verdict,
    current_principal,
)
from armillary._providers import Provider
from armillary._redact import redact_text
from armillary._run_id import RUN_ID
from armillary._runner import Runner
from armillary._safety import SafetyPipeline, Stage
from armillary._strategies import RunContext, Strategy
from armillary._tools import Tool

if TYPE_CHECKING:
    from armillary._kernel import Kernel

log = logging.getLogger("armillary.runner")

PRUNE_INTERVAL = 300.0


@dataclass
class _Handle:
    run_id: str
    #: the run's queue priority (higher first)
    priority: int = 0
    #: set while the run may proceed; cleared by pause
    proceed: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[str | None] | None = None
    #: the strategy's task was cancelled (by `_interrupt`, the only place that does)
    interrupted: bool = False
    #: the end status claimed for the run; set once, by whoever ends it (see `_claim`)
    final: RunStatus | None = None
    #: serialises this run's status writes, so none lands after the end
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: a worker took the run (it holds that worker until it ends)
    started: bool = False
    #: the run id is in the queue
    queued: bool = False

    def __post_init__(self) -> None:
        self.proceed.set()

class LocalRunContext(RunContext):
    def __init__(self, runner: LocalRunner, run: Run, agent: AgentSpec, handle: _Handle) -> None:
        self.run = run
        self.agent = agent
        self.safety: SafetyPipeline = runner.kernel.safety
        self.guard = Guard(self.safety, {"run_id": run.id, "agent": agent.name},
                           on_verdict=self._verdict,
                           on_call=runner.kernel.provider_called,
                           # the goal went through the input stage at submit
                           checked_inputs=[run.goal])
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

    def unchecked_provider(self, name: str | None = None) -> Provider:
        return self._runner.kernel.provider(name or self.agent.provider)

    def unchecked_tools(self) -> list[Tool]:
        return self._runner.kernel.tools_for(self.agent)

    async def _verdict(self, stage: Stage, verdict: Verdict) -> None:
        """Every redaction or block is in the run's log: stage, check and code, never the
        text that matched."""
        await self.emit("safety", {"stage": stage, "check": verdict.check,
                                   "action": "blocked" if not verdict.allowed else "redacted",
                                   "code": verdict.code})


class LocalRunner(Runner):
    def __init__(self, kernel: Kernel, *, prune_interval: float | None = None) -> None:
        self.kernel = kernel
        self.prune_interval = PRUNE_INTERVAL if prune_interval is None else prune_interval
        #: (-priority, arrival, run id): a higher priority first, then first come
        self._queue: asyncio.PriorityQueue[tuple[int, int, str]] = asyncio.PriorityQueue()
        self._arrivals = itertools.count()
        self._handles: dict[str, _Handle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        #: event types already warned about (not strict: once per type)
        self._warned: set[str] = set()

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        store = self.kernel.store
        stale = [RunStatus.RUNNING, RunStatus.PAUSED]
        for run in await store.list_runs(status=stale, limit=await store.count_runs(status=stale)):
            if run.status is RunStatus.PAUSED and run.started_at is None:
                # paused before it ever started: nothing is half done, so it stays paused
                # (parked, holding no worker) and is queued again when resumed
                handle = self._handles[run.id] = _Handle(run.id, priority=run.priority)
                handle.proceed.clear()
                continue
            await self._record_end(run.id, RunStatus.INTERRUPTED, error=ErrorInfo(
                detail="the server stopped while this run was in progress", code="interrupted"))
        queued = await store.list_runs(status=[RunStatus.QUEUED],
                                       limit=await store.count_runs(status=[RunStatus.QUEUED]))
        for run in sorted(queued, key=lambda r: r.created_at):
            self._enqueue(run.id, run.priority)
        await self.prune()
        self._tasks = [asyncio.create_task(self._worker(), name=f"armillary-worker-{i}")
                       for i in range(self.kernel.config.kernel.max_concurrent_runs)]
        self._tasks.append(asyncio.create_task(self._prune_loop(), name="armillary-pruner"))

    async def stop(self) -> None:
        """Stop the workers and end the runs they were executing as `interrupted` (their
        followers see the end event). Queued and parked runs stay as they are, for the
        next start. Safe to call more than once."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for handle in list(self._handles.values()):
            if not handle.started or handle.done.is_set():
                continue
            if self._claim(handle, RunStatus.INTERRUPTED):
                await self._conclude(handle, RunStatus.INTERRUPTED, error=ErrorInfo(
                    detail="the server shut down while this run was in progress",
                    code="interrupted"))
            else:  # a cancel or the run itself is writing its end: let it
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(handle.done.wait(), 5)
        self._handles = {k: h for k, h in self._handles.items() if not h.started}

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
        """Append an event to the run's log, then publish it on the run's topic and on
        the firehose (`armillary._events.FIREHOSE`), in that order, so a subscriber that
        replays the log after subscribing misses nothing.

        First the event is checked against the declared event types
        (`register_event_types`): with `[kernel] strict_events` an undeclared type raises
        `unknown_event_type` and a payload that does not fit its model
        `invalid_event_payload` (nothing is written); otherwise each is logged once per
        type and the event is kept as it is."""
        self._check_event(type, payload)
        event = await self.kernel.store.append_event(run_id, type, payload)
        await self.kernel.bus.publish(run_id, event)
        await self.kernel.bus.publish(FIREHOSE, event)
        return event

    def _check_event(self, type: str, payload: dict[str, Any]) -> None:
        strict = self.kernel.config.kernel.strict_events
        if not strict and type in self._warned:
            return  # said once already; not worth validating every token event again
        declared = self.kernel.registry.event_types.get(type)
        if declared is None:
            code = "unknown_event_type"
            problem = (f"event type {type!r} is not declared by any enabled plugin "
                       f"(declare it with register_event_types)")
        elif declared.item is None:
            return
        else:
            try:
                declared.item.model_validate(payload)
                return
            except ValidationError as exc:
                code = "invalid_event_payload"
                fields = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(payload)'}: "
                                   f"{e['msg']}" for e in exc.errors()[:3])
                problem = (f"event {type!r} does not fit {declared.item.__name__} (declared "
                           f"by plugin {declared.plugin!r}): {fields}")
        if strict:
            raise ArmillaryError(problem, code=code, extra={"event_type": type})
        self._warned.add(type)
        log.warning("%s (logged once per type; [kernel] strict_events = true makes it an "
                    "error)", problem)

    async def _set_status(self, run_id: str, status: RunStatus, payload: dict[str, Any],
                          **changes: Any) -> Run:
        run = await self.kernel.store.update_run(run_id, status=status, **changes)
        await self.emit(run_id, status.value, {"status": status.value, **payload})
        return run

    async def _record_end(self, run_id: str, status: RunStatus, *, result: str | None = None,
                          error: ErrorInfo | None = None) -> Run:
        """Write the run's final status and its end event (no ownership checks)."""
        current = await self.kernel.store.get_run(run_id)
        steps = current.steps_taken if current else 0
        return await self._set_status(
            run_id, status,
            {"result": result, "error": error.model_dump() if error else None,
             "steps_taken": steps},
            result=result, error=error, finished_at=time.time())

    # The end of a run is decided once: `_claim` (synchronous, so atomic on the loop) sets
    # `handle.final`; only the caller that claimed writes the end, after the strategy's
    # task is over, under the handle's lock (so no status write lands after it). Everyone
    # else checks `handle.final` before writing anything.

    @staticmethod
    def _claim(handle: _Handle, status: RunStatus) -> bool:
        if handle.final is not None:
            return False
        handle.final = status
        return True

    @staticmethod
    def _interrupt(handle: _Handle) -> None:
        """Cancel the strategy's task, once: every path that ends a run from outside
        comes here. A second cancel would interrupt the task's cleanup (closing the
        provider stream, which awaits the connection's close) and leave it half done."""
        task = handle.task
        if task is None or handle.interrupted or task.done():
            return
        handle.interrupted = True
        task.cancel()

    def _release(self, handle: _Handle) -> None:
        if self._handles.get(handle.run_id) is handle:
            del self._handles[handle.run_id]
        handle.done.set()

    async def _write_end(self, handle: _Handle, status: RunStatus, *,
                         result: str | None = None, error: ErrorInfo | None = None) -> Run:
        try:
            async with handle.lock:
                return await self._record_end(handle.run_id, status, result=result,
                                              error=error)
        finally:
            self._release(handle)

    async def _conclude(self, handle: _Handle, status: RunStatus, *,
                        error: ErrorInfo | None = None) -> Run:
        """For the claimant of an end it did not reach by itself (cancel, stop, shutdown):
        cancel the strategy's task (if nobody has yet), wait until it is over, its cleanup
        included, then write the end."""
        self._interrupt(handle)
        task = handle.task
        if task is not None and not task.done():
            grace = self.kernel.config.kernel.cancel_grace_seconds
            await asyncio.wait([task], timeout=grace)
            if not task.done():
                # the strategy swallowed its cancel (or its cleanup hangs): the end is
                # written anyway, so a DELETE never hangs; the task is left to finish
                log.warning("run %s: strategy %s did not stop within %.1f s of its "
                            "cancel; the run is ended without it", handle.run_id,
                            task.get_name(), grace)
        return await self._write_end(handle, status, error=error or ErrorInfo(
            detail=f"the run was {status.value}", code=status.value))

    async def _lost(self, handle: _Handle) -> NoReturn:
        """Another caller ended the run: wait for its end to be written, then conflict."""
        await handle.done.wait()
        run = await self.kernel.store.get_run(handle.run_id)
        status = run.status.value if run is not None else "finished"
        raise Conflict(f"run {handle.run_id!r} is already {status}", code="run_finished",
                       extra={"status": status})

    # --- submission and execution --------------------------------------------------

    def _enqueue(self, run_id: str, priority: int = 0) -> None:
        self._handles[run_id] = _Handle(run_id, priority=priority, queued=True)
        self._put(run_id, priority)

    def _put(self, run_id: str, priority: int) -> None:
        self._queue.put_nowait((-priority, next(self._arrivals), run_id))

    def _strategy(self, name: str) -> Strategy:
        entry = self.kernel.registry.strategies.get(name)
        if entry is None:
            raise NotFound(f"no strategy named {name!r} (have: "
                           f"{', '.join(self.kernel.registry.strategies) or 'none'})",
                           code="strategy_not_found")
        return entry[1]

    async def submit(self, run: Run) -> Run:
        agent = self.kernel.agent(run.agent)  # raises agent_not_found
        strategy = self.kernel.strategy_name(agent, run.strategy)
        self._strategy(strategy)
        # the input stage on the goal before anything is stored: a goal a check blocks is
        # refused (`SafetyBlocked`, nothing kept), a redacted one is stored redacted, so
        # the run record, its `queued` event and every view hold only what was allowed
        goal = await self.kernel.guard(run_id=run.id, agent=agent.name).check_input(run.goal)
        run = run.model_copy(update={"status": RunStatus.QUEUED, "strategy": strategy,
                                     "goal": goal})
        stored = await self.kernel.store.create_run(run)
        await self.emit(run.id, RunStatus.QUEUED.value, {
            "status": "queued", "goal": run.goal, "agent": run.agent,
            "strategy": run.strategy, "max_steps": run.max_steps})
        self._enqueue(run.id, run.priority)
        return stored

    async def _worker(self) -> None:
        while True:
            *_, run_id = await self._queue.get()
            handle = self._handles.get(run_id)
            if handle is None:
                continue
            handle.queued = False
            if handle.final is not None or handle.started:
                continue
            if not handle.proceed.is_set():
                continue  # paused while queued: parked, holding no worker, until resumed
            handle.started = True
            try:
                await self._execute(handle)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("run %s: the runner failed", run_id)
                if self._claim(handle, RunStatus.FAILED):
                    await self._conclude(handle, RunStatus.FAILED, error=ErrorInfo(
                        detail="the runner failed", code="internal_error"))

    async def _execute(self, handle: _Handle) -> None:
        store = self.kernel.store
        run = await store.get_run(handle.run_id)
        if run is None or run.status.finished:  # pruned, or ended elsewhere
            self._release(handle)
            return
        if handle.final is not None:
            return  # ended while we looked: the claimant writes the end
        try:
            agent = self.kernel.agent(run.agent)
            strategy = self._strategy(self.kernel.strategy_name(agent, run.strategy))
        except ArmillaryError as exc:
            if self._claim(handle, RunStatus.FAILED):
                await self._write_end(handle, RunStatus.FAILED,
                                      error=ErrorInfo(detail=exc.detail, code=exc.code))
            return
        async with handle.lock:
            if handle.final is not None:
                return
            if handle.proceed.is_set():
                run = await self._set_status(run.id, RunStatus.RUNNING, {},
                                             started_at=time.time())
            else:  # paused just as it started: it waits at its first checkpoint
                run = await store.update_run(run.id, started_at=time.time())
            if handle.final is not None:
                return  # a cancel claimed the end meanwhile: the strategy never starts
            ctx = LocalRunContext(self, run, agent, handle)
            # the task runs with `RUN_ID` set (in a copy of this context), so logs of the
            # strategy and of every task it starts carry the run id
            context = contextvars.copy_context()
            context.run(RUN_ID.set, run.id)
            if run.owner is not None and current_principal() is None:
                # the run acts for whoever submitted it: what it creates is theirs, and
                # what it reads is what they may see (their name, no scopes)
                context.run(_PRINCIPAL.set, Principal(name=run.owner))
            task = handle.task = asyncio.create_task(strategy.execute(ctx),
                                                     name=f"armillary-run-{run.id}",
                                                     context=context)
        result: str | None = None
        error: ErrorInfo | None = None
        try:
            # shielded: a worker being stopped does not pass its own cancel on to the
            # task; it ends the run through `_interrupt`, like every other path
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # the worker is being stopped
                self._interrupt(handle)  # `stop` writes the end once the task is over
                raise
            if handle.final is not None:
                return  # cancelled by whoever claimed the end; it writes the end
            error = ErrorInfo(detail="the run's task was cancelled", code="internal_error")
        except Exception as exc:
            if handle.final is not None:
                return
            if isinstance(exc, ArmillaryError):
                error = ErrorInfo(detail=exc.detail, code=exc.code)
            else:
                log.exception("run %s: strategy %s raised", run.id, run.strategy)
                # not the project's own error: its text may hold a URL with a key
                error = ErrorInfo(detail=redact_text(f"{type(exc).__name__}: {exc}"),
                                  code="internal_error")
        status = RunStatus.FAILED if error is not None else RunStatus.COMPLETED
        if self._claim(handle, status):
            await self._write_end(handle, status, result=result, error=error)

    # --- control -------------------------------------------------------------------

    async def _controllable(self, run_id: str) -> tuple[Run, _Handle | None]:
        handle = self._handles.get(run_id)  # before awaiting: a run ending meanwhile drops it
        run = await self.kernel.store.get_run(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}", code="run_not_found")
        if handle is not None and handle.final is not None:
            await self._lost(handle)
        if run.status.finished:
            raise Conflict(f"run {run_id!r} is already {run.status.value}",
                           code="run_finished", extra={"status": run.status.value})
        return run, handle

    async def _end(self, run_id: str, status: RunStatus, error: ErrorInfo | None = None
                   ) -> Run:
        _, handle = await self._controllable(run_id)
        error = error or ErrorInfo(detail=f"the run was {status.value}", code=status.value)
        if handle is None:  # not owned by this process (e.g. left by another worker)
            return await self._record_end(run_id, status, error=error)
        if not self._claim(handle, status):
            await self._lost(handle)  # the run ended first (completed, or another cancel)
        self._interrupt(handle)  # at once, before anything else can run
        # shielded: a caller that goes away does not leave the run half ended
        return await asyncio.shield(self._conclude(handle, status, error=error))

    async def cancel(self, run_id: str, *, error: ErrorInfo | None = None) -> Run:
        return await self._end(run_id, RunStatus.CANCELLED, error)

    async def stop_run(self, run_id: str, *, error: ErrorInfo | None = None) -> Run:
        return await self._end(run_id, RunStatus.STOPPED, error)

    async def pause(self, run_id: str) -> Run:
        """A running run pauses at its next checkpoint and keeps its worker; a queued run
        is parked (it holds no worker) until resumed, then queued again."""
        run, handle = await self._controllable(run_id)
        if run.status is RunStatus.PAUSED or handle is None:
            return run
        async with handle.lock:
            if handle.final is None:
                handle.proceed.clear()
                detail = ("pauses at the next step boundary" if handle.started
                          else "will not start until resumed")
                return await self._set_status(run_id, RunStatus.PAUSED, {"detail": detail})
        await self._lost(handle)

    async def resume(self, run_id: str) -> Run:
        run, handle = await self._controllable(run_id)
        if run.status is not RunStatus.PAUSED or handle is None:
            return run
        async with handle.lock:
            if handle.final is None:
                handle.proceed.set()
                if not handle.started and not handle.queued:  # parked: queue it again
                    handle.queued = True
                    self._put(run_id, handle.priority)
                status = RunStatus.RUNNING if handle.started else RunStatus.QUEUED
                return await self._set_status(run_id, status, {"resumed": True})
        await self._lost(handle)

    async def wait(self, run_id: str, timeout: float | None = None) -> Run:
        handle = self._handles.get(run_id)
        if handle is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(handle.done.wait(), timeout)
        run = await self.kernel.store.get_run(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}", code="run_not_found")
        return run

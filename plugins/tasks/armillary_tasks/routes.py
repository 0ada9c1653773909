"""The Pori task API: /v1/tasks…, /v1/tools (streaming is in `stream.py`, run control
in `control.py`)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from armillary import Conflict, Kernel, KernelDep, NotFound, Run, RunStatus, owner_filter
from armillary_tasks import views
from armillary_tasks.control import control
from armillary_tasks.schemas import (
    MAX_LIMIT,
    MAX_OFFSET,
    ControlRequest,
    ControlResponse,
    MemorySnapshotResponse,
    PlanResponse,
    StepListResponse,
    TaskCreateRequest,
    TaskCreateResponse,
    TaskListResponse,
    TaskResultResponse,
    TaskStatusResponse,
    ToolCallListResponse,
    ToolInfo,
    ToolListResponse,
    ts,
)
from armillary_tasks.settings import TasksSettings

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such task (`task_not_found`)"},
}
#: for the routes that act on a task (cancel, control)
ERRORS: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    409: {"description": "The task is already finished (`task_finished`, with `status`)"},
}
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")]


def _json(model: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


async def _wait_or_cancel(kernel: Kernel, request: Request, run_id: str, timeout: float) -> Run:
    """Wait for the run; if the client goes away first, cancel it (it asked to wait)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        run = await kernel.runner.wait(run_id, timeout=min(0.5, max(deadline - loop.time(), 0)))
        if run.status.finished or loop.time() >= deadline or kernel.stopping.is_set():
            return run  # (a server shutting down answers 202 with the status now)
        if await request.is_disconnected():
            with contextlib.suppress(Conflict, NotFound):
                await kernel.runner.cancel(run_id)
            return run


def make_router(settings: TasksSettings) -> APIRouter:
    router = APIRouter(tags=["tasks"])

    @router.post("/v1/tasks", status_code=202, responses={
        200: {"model": TaskResultResponse, "description": "`wait` and the task ended"},
        202: {"model": TaskCreateResponse, "description": "Accepted: the task is queued "
              "(or, with `wait`, still running when the wait timed out)"},
        404: {"description": "No such agent (`agent_not_found`), or the agent names a "
                             "strategy that is not registered (`strategy_not_found`)"}})
    async def create_task(body: TaskCreateRequest, request: Request,
                          kernel: KernelDep) -> JSONResponse:
        """Submit a task. 202 with its id; with `wait`, the result once it ends."""
        agent = kernel.agent(body.agent)
        run = Run(goal=body.task, agent=agent.name,
                  strategy=agent.strategy or settings.default_strategy,
                  max_steps=body.max_steps or agent.max_steps or settings.default_max_steps)
        run = await kernel.runner.submit(run)
        if body.wait:
            run = await _wait_or_cancel(kernel, request, run.id, settings.wait_timeout_seconds)
            if run.status.finished:
                return _json(await views.result_of(kernel, run), 200)
        return _json(TaskCreateResponse(
            task_id=run.id, status=run.status.value,
            submitted_at=ts(run.created_at),
            stream_url=f"/v1/stream/tasks/{run.id}"), 202)

    @router.get("/v1/tasks", response_model=TaskListResponse)
    async def list_tasks(kernel: KernelDep, limit: Limit = 50, offset: Offset = 0,
                         status: Annotated[list[RunStatus] | None, Query()] = None
                         ) -> TaskListResponse:
        """Tasks, newest first, optionally only those in the given statuses."""
        owner = owner_filter()  # a key lists its own tasks; an admin key every task
        runs = await kernel.store.list_runs(status=status, limit=limit, offset=offset,
                                            owner=owner)
        return TaskListResponse(total=await kernel.store.count_runs(status=status, owner=owner),
                                items=[views.status_of(r) for r in runs])

    @router.get("/v1/tasks/{task_id}", response_model=TaskStatusResponse,
                responses=NOT_FOUND)
    async def get_task(task_id: str, kernel: KernelDep) -> TaskStatusResponse:
        """Status, progress and timing of a task."""
        return views.status_of(await views.get_run(kernel, task_id))

    @router.get("/v1/tasks/{task_id}/result", response_model=TaskResultResponse, responses={
        **NOT_FOUND, 202: {"model": TaskStatusResponse, "description": "Still running"}})
    async def get_result(task_id: str, kernel: KernelDep) -> JSONResponse:
        """The final answer: 200 once the task ended, 202 (with its status) before."""
        run = await views.get_run(kernel, task_id)
        if not run.status.finished:
            return _json(views.status_of(run), 202)
        return _json(await views.result_of(kernel, run))

    @router.delete("/v1/tasks/{task_id}", response_model=TaskStatusResponse, responses=ERRORS)
    async def cancel_task(task_id: str, kernel: KernelDep) -> TaskStatusResponse:
        """Cancel a task now: its provider stream and tool calls stop at once."""
        return views.status_of(await control(kernel, task_id, "cancel"))

    @router.get("/v1/tasks/{task_id}/steps", response_model=StepListResponse,
                responses=NOT_FOUND)
    async def get_steps(task_id: str, kernel: KernelDep, limit: Limit = 20,
                        offset: Offset = 0) -> StepListResponse:
        """Executed steps, oldest first."""
        return await views.steps_of(kernel, await views.get_run(kernel, task_id), limit, offset)

    @router.get("/v1/tasks/{task_id}/plan", response_model=PlanResponse, responses=NOT_FOUND)
    async def get_plan(task_id: str, kernel: KernelDep) -> PlanResponse:
        """The agent's current plan and last reflection."""
        return await views.plan_of(kernel, await views.get_run(kernel, task_id))

    @router.get("/v1/tasks/{task_id}/tools", response_model=ToolCallListResponse,
                responses=NOT_FOUND)
    async def get_tool_calls(task_id: str, kernel: KernelDep, limit: Limit = 50,
                             offset: Offset = 0) -> ToolCallListResponse:
        """The latest `limit` tool calls (skipping the newest `offset`), oldest first."""
        run = await views.get_run(kernel, task_id)
        return await views.tool_calls_of(kernel, run, limit, offset)

    @router.get("/v1/tasks/{task_id}/memory", response_model=MemorySnapshotResponse,
                responses=NOT_FOUND)
    async def get_memory(task_id: str, kernel: KernelDep,
                         limit: Limit = 20) -> MemorySnapshotResponse:
        """(Debug) the last `limit` working messages and the last summary."""
        return await views.memory_of(kernel, await views.get_run(kernel, task_id), limit)

    @router.post("/v1/tasks/{task_id}/control", response_model=ControlResponse,
                 responses=ERRORS)
    async def control_task(task_id: str, body: ControlRequest,
                           kernel: KernelDep) -> ControlResponse:
        """Pause (at the next step boundary), resume or stop a task."""
        run = await control(kernel, task_id, body.action)
        detail = {"pause": "the task pauses at the next step boundary",
                  "resume": "the task continues",
                  "stop": "the task was stopped"}[body.action]
        return ControlResponse(task_id=run.id, new_status=run.status.value, detail=detail)

    @router.get("/v1/tools", response_model=ToolListResponse, tags=["tools"])
    async def list_tools(kernel: KernelDep, limit: Limit = 50,
                         offset: Offset = 0) -> ToolListResponse:
        """Registered tools with their descriptions and argument schemas."""
        entries = sorted(kernel.registry.tools.items())
        items = [ToolInfo(name=n, description=t.description, parameters=t.parameters, plugin=p)
                 for n, (p, t) in entries[offset:offset + limit]]
        return ToolListResponse(total=len(entries), items=items)

    return router

"""The multi-agent seed's agent, task and status routes (and the Pi seed's GET /agents)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, WebSocket

from armillary import (
    Kernel,
    KernelDep,
    NotFound,
    RunStatus,
    ServiceUnavailable,
    cancel_on_disconnect,
    owner_filter,
    visible,
)
from armillary_agents.execute import execute
from armillary_agents.schemas import (
    MAX_TASKS_LIMIT,
    AgentListResponse,
    AgentStatusResponse,
    SystemStatusResponse,
    TaskListResponse,
    TaskRequest,
    TaskResult,
)
from armillary_agents.state import AgentsState, state_of
from armillary_agents.updates import serve_client
from armillary_agents.views import agents_of, describe, system_status, task_result

router = APIRouter(tags=["agents"])

AGENT_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such agent (`agent_not_found`)"}}
TASK_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such task (`task_not_found`)"}}
Id = Annotated[str, Path(max_length=200)]


def running_state(kernel: Kernel) -> AgentsState:
    state = state_of(kernel)
    if state is None:
        raise ServiceUnavailable("the agents plugin is not started")
    return state


@router.get("/agents", response_model=AgentListResponse)
async def list_agents(kernel: KernelDep) -> dict[str, Any]:
    """Every agent: the multi-agent seed's status fields (agent_id, agent_type, status,
    capabilities, counters) and the Pi seed's (name, description, provider, model,
    tools) in one object."""
    return {"agents": agents_of(kernel, state_of(kernel))}


@router.get("/agents/{agent_id}/status", response_model=AgentStatusResponse,
            responses=AGENT_NOT_FOUND)
async def agent_status(agent_id: Id, kernel: KernelDep) -> dict[str, Any]:
    """One agent's status and counters."""
    entry = kernel.registry.agents.get(agent_id)
    if entry is None:
        raise NotFound(f"no agent named {agent_id!r}", code="agent_not_found")
    state = state_of(kernel)
    if state is not None:
        state.activity.drain()
    return describe(kernel, entry[0], entry[1], state)


@router.post("/agents/{agent_id}/execute", response_model=TaskResult, responses={
    **AGENT_NOT_FOUND,
    504: {"description": "The timeout passed while the task waited for its turn "
                         "(`task_timeout`; no run was made)"}})
async def execute_task(agent_id: Id, body: TaskRequest, request: Request,
                       kernel: KernelDep) -> dict[str, Any]:
    """Run a task on the agent and answer with its TaskResult once it ends. Tasks wait
    their turn by `priority`; `timeout_seconds` ends the task with `task_timeout`; a
    client that disconnects cancels its task."""
    return await cancel_on_disconnect(
        request, execute(kernel, running_state(kernel), agent_id, body))


@router.get("/tasks", response_model=TaskListResponse)
async def list_tasks(kernel: KernelDep,
                     status: Annotated[list[RunStatus] | None, Query()] = None,
                     limit: Annotated[int, Query(ge=1)] = 50
                     ) -> dict[str, Any]:
    """Tasks (every run, the same as /v1/tasks), newest first, optionally only those in
    the given statuses; at most `limit` (the seed's is unbounded: above 1000 it is 1000).
    With auth on, a key lists its own tasks (an admin key every one)."""
    runs = await kernel.store.list_runs(status=status, limit=min(limit, MAX_TASKS_LIMIT),
                                        owner=owner_filter())
    return {"tasks": [task_result(r) for r in runs]}


@router.get("/tasks/{task_id}", response_model=TaskResult, responses=TASK_NOT_FOUND)
async def get_task(task_id: Id, kernel: KernelDep) -> dict[str, Any]:
    """One task in TaskResult shape."""
    run = await kernel.store.get_run(task_id)
    if run is None or not visible(run.owner):  # another key's task does not exist for it
        raise NotFound(f"no task {task_id!r}", code="task_not_found")
    return task_result(run)


@router.get("/system/status", response_model=SystemStatusResponse)
async def get_system_status(kernel: KernelDep) -> dict[str, Any]:
    """Overall status, every agent, and the request metrics since startup."""
    return system_status(kernel, state_of(kernel))


@router.websocket("/ws/agent-updates")
async def agent_updates(ws: WebSocket, kernel: KernelDep) -> None:
    """`system_status` at once, then `status_update` on every change and at least every
    `update_interval_seconds`."""
    state = state_of(kernel)
    await ws.accept()
    if state is None:
        await ws.close(code=1011)
        return
    await serve_client(ws, state.updates, kernel.stopping)

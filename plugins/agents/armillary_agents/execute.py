"""POST /agents/{id}/execute: one task as a run, through the kernel's runner.

The task waits its turn by priority (`admission`), then is submitted as a run whose goal
is the operation (and its parameters, as JSON) and whose metadata keeps the request
(`source: "agents.execute"`, `operation`, `parameters`, `priority`, `timeout_seconds`).
The route waits for the run's end and answers with its TaskResult. The timeout covers
the whole task from the request's arrival: a task still waiting for its turn when it
passes gets 504 `task_timeout` (no run was made); a run still going fails with
`task_timeout` (`agents.timed`). A client that disconnects cancels its run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from armillary import ArmillaryError, Conflict, ErrorInfo, Kernel, NotFound, Run, to_json
from armillary_agents.admission import RANK
from armillary_agents.schemas import TaskRequest
from armillary_agents.state import AgentsState
from armillary_agents.timeout import TIMED_STRATEGY, TIMEOUT_CODE
from armillary_agents.views import task_result

SOURCE = "agents.execute"
#: after a timed task's deadline, how long to wait for its run to write its end
END_GRACE = 5.0


def goal_of(body: TaskRequest) -> str:
    if not body.parameters:
        return body.operation
    return f"{body.operation}\n\nParameters: {to_json(body.parameters)}"


async def execute(kernel: Kernel, state: AgentsState, agent_id: str,
                  body: TaskRequest) -> dict[str, Any]:
    arrived = time.time()
    agent = kernel.agent(agent_id)  # 404 agent_not_found
    strategy = kernel.strategy_name(agent)
    if strategy not in kernel.registry.strategies:
        raise NotFound(f"agent {agent.name!r} names strategy {strategy!r}, which is not "
                       f"registered", code="strategy_not_found")
    priority = body.priority or "normal"
    timeout = body.timeout_seconds
    metadata: dict[str, Any] = {"source": SOURCE, "operation": body.operation,
                                "parameters": body.parameters, "priority": priority}
    run_strategy: str | None = None
    if timeout is not None:
        run_strategy = TIMED_STRATEGY
        metadata.update(strategy=strategy, timeout_seconds=timeout, deadline=arrived + timeout)

    admission = state.admission
    try:
        async with asyncio.timeout(timeout):
            await admission.acquire(priority)
    except TimeoutError:
        raise ArmillaryError(f"the task waited its turn for its whole timeout of {timeout} s "
                             f"(busy with {admission.active} tasks); no run was made",
                             code=TIMEOUT_CODE, status_code=504) from None
    try:
        run = await kernel.runner.submit(Run(
            goal=goal_of(body), agent=agent.name, strategy=run_strategy,
            max_steps=agent.max_steps or 50, metadata=metadata,
            # the runner's queue order too: urgent 3 … low 0 (higher first)
            priority=len(RANK) - 1 - RANK[priority]))
        wait = (arrived + timeout + END_GRACE - time.time() if timeout is not None
                else state.settings.wait_timeout_seconds)
        try:
            run = await kernel.runner.wait(run.id, timeout=max(wait, 0.0))
        except asyncio.CancelledError:  # the client left: nobody wants the answer
            with contextlib.suppress(Conflict, NotFound):
                await asyncio.shield(kernel.runner.cancel(run.id))
            raise
        if timeout is not None and not run.status.finished:
            # still queued in the runner behind other work past its deadline: cancelled
            # with the timeout's code, as a timed-out running task ends
            with contextlib.suppress(Conflict, NotFound):
                await kernel.runner.cancel(run.id, error=ErrorInfo(
                    detail=f"the task did not start within its timeout of {timeout} s",
                    code=TIMEOUT_CODE))
            run = await kernel.runner.wait(run.id, timeout=END_GRACE)
        return task_result(run)
    finally:
        admission.release()

"""Run control for the task API, shared by the HTTP routes and the WebSocket: pause,
resume, stop and cancel, with the task API's error codes."""

from __future__ import annotations

from typing import Literal

from armillary import Conflict, Kernel, NotFound, Run
from armillary_tasks import views

Action = Literal["pause", "resume", "stop", "cancel"]


async def control(kernel: Kernel, task_id: str, action: Action) -> Run:
    """Apply `action` to a task and return it as it is now. Raises 404 `task_not_found`,
    or 409 `task_finished` (with `status`) when it already ended — also when it ends
    while the action is under way."""
    run = await views.get_run(kernel, task_id)
    if run.status.finished:
        raise views.finished_conflict(run)
    runner = kernel.runner
    call = {"pause": runner.pause, "resume": runner.resume, "stop": runner.stop_run,
            "cancel": runner.cancel}[action]
    try:
        return await call(task_id)
    except Conflict:
        raise views.finished_conflict(await views.get_run(kernel, task_id)) from None
    except NotFound:
        raise NotFound(f"no task {task_id!r}", code="task_not_found") from None

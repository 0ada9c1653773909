"""Armillary plugin `tasks`: the Pori task API over the kernel's runner.

- POST/GET /v1/tasks, GET/DELETE /v1/tasks/{id}, GET /v1/tasks/{id}/result, /steps, /plan,
  /tools, /memory, POST /v1/tasks/{id}/control, GET /v1/tools
- /v1/stream/tasks/{id}: SSE on GET (through `armillary.EventStreams`, which the `sse`
  plugin provides: 503 without it) and the WebSocket side
- the `armillary submit` command (`armillary_tasks.cli`)
- settings in `[plugins.tasks]` (`armillary_tasks.settings.TasksSettings`)
"""

from __future__ import annotations

from armillary import RegisterCommand, RegisterRouter, hookimpl
from armillary_tasks.settings import TasksSettings


@hookimpl
def settings_model() -> type[TasksSettings]:
    return TasksSettings


@hookimpl
def register_routers(register: RegisterRouter, settings: TasksSettings) -> None:
    from armillary_tasks import routes, stream

    register(routes.make_router(settings))
    register(stream.make_router(settings))


@hookimpl
def register_commands(register: RegisterCommand) -> None:
    """`armillary submit "goal" --url URL [--follow]`: this API, from the command line."""
    from armillary_tasks.cli import submit

    register(submit)

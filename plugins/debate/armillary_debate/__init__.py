"""Armillary plugin `debate`: multi-agent debate (structured, freeform, autonomous) as a
runner strategy, with the seed's routes.

- the `debate` strategy (`armillary_debate.strategy`) and its event types
  (`debate.started`, `debate.round_started`, `debate.argument`, `debate.moderator`,
  `debate.consensus`, `debate.synthesis`, `debate.concluded`)
- POST /debate/initialize, POST /debate/{id}/control, GET /debates/{id},
  WebSocket /ws/debate-updates (`armillary_debate.routes`)
- settings in `[plugins.debate]` (`armillary_debate.settings.DebateSettings`)
"""

from __future__ import annotations

from armillary import (
    Kernel,
    RegisterEventType,
    RegisterRouter,
    RegisterStrategy,
    hookimpl,
)
from armillary_debate.settings import DebateSettings


@hookimpl
def settings_model() -> type[DebateSettings]:
    return DebateSettings


@hookimpl
def register_strategies(register: RegisterStrategy, settings: DebateSettings) -> None:
    from armillary_debate.strategy import DebateStrategy

    register(DebateStrategy(settings))


@hookimpl
def register_event_types(register: RegisterEventType) -> None:
    from armillary_debate.schemas import EVENT_TYPES

    for name, model in EVENT_TYPES.items():
        register(name, model)


@hookimpl
def register_routers(register: RegisterRouter, settings: DebateSettings) -> None:
    from armillary_debate import routes

    register(routes.make_router(settings))


@hookimpl
async def startup(kernel: Kernel) -> None:
    from armillary_debate.debates import KIND, DebateState

    kernel.state[KIND] = DebateState()

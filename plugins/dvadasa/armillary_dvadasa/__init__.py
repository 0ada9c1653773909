"""Armillary plugin `dvadasa`: the Dvādaśa API — twelve heads in parallel and a
synthesising Witness.

- POST /v1/sessions, GET /v1/sessions/{id}, POST /v1/sessions/{id}/prompt, WebSocket
  /v1/sessions/{id}/stream (`armillary_dvadasa.routes`)
- the `dvadasa` strategy and agent (`armillary_dvadasa.strategy`): each prompt is a run
  in the store, so `/v1/tasks/{task_id}` and its stream show it too
- sessions are the store's conversations of kind "dvadasa" (`armillary_dvadasa.sessions`)
- settings in `[plugins.dvadasa]` (`armillary_dvadasa.settings.DvadasaSettings`)
"""

from __future__ import annotations

from typing import Any

from armillary import (
    AgentSpec,
    Kernel,
    RegisterAgent,
    RegisterEventType,
    RegisterRouter,
    RegisterStrategy,
    hookimpl,
)
from armillary_dvadasa.settings import DvadasaSettings

NAME = "dvadasa"


@hookimpl
def settings_model() -> type[DvadasaSettings]:
    return DvadasaSettings


@hookimpl
def register_strategies(register: RegisterStrategy, settings: DvadasaSettings) -> None:
    from armillary_dvadasa.strategy import DvadasaStrategy

    register(DvadasaStrategy(settings))


@hookimpl
def register_agents(register: RegisterAgent, settings: DvadasaSettings) -> None:
    # the agent runs name; an [agents.dvadasa] in plugins.toml wins over it
    register(AgentSpec(name=NAME, description="Twelve heads in parallel and a Witness that "
                       "synthesises (the Dvādaśa API)", provider=settings.provider,
                       model=settings.model, tools=[], strategy=NAME))


@hookimpl
def register_event_types(register: RegisterEventType) -> None:
    from armillary_dvadasa import events

    register(events.HEADS_RUNNING, events.HeadsRunning)
    register(events.HEAD_COMPLETE, events.HeadContribution)
    register(events.WITNESS_RUNNING, events.WitnessRunning)
    register(events.SYNTHESIS, events.Synthesis)


@hookimpl
def register_routers(register: RegisterRouter) -> None:
    from armillary_dvadasa.routes import make_router

    register(make_router())


@hookimpl
async def startup(kernel: Kernel) -> None:
    from armillary import ConversationPolicy
    from armillary_dvadasa import sessions
    from armillary_dvadasa.pipeline import DvadasaState

    settings: Any = kernel.settings[NAME]
    kernel.state[NAME] = DvadasaState(settings, kernel.conversations(
        sessions.KIND, ConversationPolicy(ttl_seconds=settings.session_ttl_seconds,
                                          max_conversations=settings.max_sessions,
                                          max_items=settings.max_session_items)))


@hookimpl
async def shutdown(kernel: Kernel) -> None:
    kernel.state.pop(NAME, None)

"""Armillary plugin `realtime`: the Realtime agent server under /api (the seed
realtime-agent-migration-plan.md, §4, §18 to §20).

- upstream (OpenAI): GET /api/health, /api/session, /api/session2, POST /api/responses,
  /api/moderate, /api/agent/run (`armillary_realtime.upstream_routes`)
- scenarios: GET /api/scenarios, /api/scenarios/{id} (`scenario_routes`)
- POST /api/tools/execute (`tool_routes`), POST /api/context/snapshot (`context`)
- POST /api/orchestrate and the push channel WS /api/orchestration/{session_id}
  (`orchestration`)
- SDK sessions: POST /api/sdk/session/create, /message, GET /transcript (`sdk_routes`),
  run by the `handoff` strategy (`handoff`) as the agent `realtime_sdk`
- settings: `[plugins.realtime]` (`settings.AgentsSettings`) with
  `[plugins.realtime.upstream]` (`upstream.UpstreamSettings`)
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


def _settings_class() -> type:
    from pydantic import Field

    from armillary_realtime.settings import AgentsSettings
    from armillary_realtime.upstream import UpstreamSettings

    class RealtimeSettings(AgentsSettings):
        """`[plugins.realtime]`: the agents side (scenarios, SDK sessions, …) and the
        upstream side in `[plugins.realtime.upstream]`."""

        upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)

    return RealtimeSettings


@hookimpl
def settings_model() -> type:
    return _settings_class()


@hookimpl
def register_strategies(register: RegisterStrategy) -> None:
    from armillary_realtime.handoff import HandoffStrategy

    register(HandoffStrategy())


@hookimpl
def register_agents(register: RegisterAgent, settings: Any) -> None:
    from armillary_realtime.handoff import NAME
    from armillary_realtime.sdk_routes import SDK_AGENT

    # every tool: each session agent narrows them to its own (sdk_tools, a scenario's)
    register(AgentSpec(name=SDK_AGENT, description="Runs SDK session turns (the realtime "
                       "plugin's handoff strategy)", strategy=NAME,
                       max_steps=settings.sdk_max_steps))


@hookimpl
def register_event_types(register: RegisterEventType) -> None:
    from armillary_realtime.events import EVENT_TYPES

    for name, payload in EVENT_TYPES.items():
        register(name, payload)


@hookimpl
def register_routers(register: RegisterRouter, settings: Any) -> None:
    from armillary_realtime import (
        context,
        orchestration,
        scenario_routes,
        sdk_routes,
        tool_routes,
        upstream_routes,
    )

    register(upstream_routes.make_router(settings), tags=["realtime"])
    for module in (scenario_routes, tool_routes, context, orchestration, sdk_routes):
        register(module.make_router(settings))


@hookimpl
async def startup(kernel: Kernel) -> None:
    from armillary import ArmillaryError
    from armillary_realtime.handoff import NAME, HandoffStrategy
    from armillary_realtime.scenarios import missing_tools

    settings = kernel.settings["realtime"]
    missing = missing_tools(kernel, settings)
    if missing:
        raise ArmillaryError("[plugins.realtime] names tools no enabled plugin registers: "
                             + "; ".join(missing) + " (enable the plugin that has them, "
                             "e.g. \"tools\")", code="config_error")
    entry = kernel.registry.strategies.get(NAME)
    if entry is not None and isinstance(entry[1], HandoffStrategy):
        entry[1].bind(kernel)

"""Server-owned scenarios and their agents, as the browser's Realtime SDK takes them.

A scenario is a set of agents from `[plugins.realtime.scenarios.<id>]`; each agent is
rendered as openai-realtime-agents' `RealtimeAgent` config: `name`, `instructions`,
`voice`, `handoffDescription`, `handoffs` (agent names) and `tools` as JSON-schema
function specs built from the kernel's tools, so the browser and the server describe a
tool the same way. `/api/session2` (the upstream module) uses `get_scenario` and
`initial_agents`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from armillary import Kernel, NotFound, Tool
from armillary_realtime.settings import AgentSettings, AgentsSettings, ScenarioSettings


class ToolSpecOut(BaseModel):
    """A Realtime/Responses function tool."""

    type: str = "function"
    name: str
    description: str = ""
    parameters: dict[str, Any]


class AgentOut(BaseModel):
    name: str
    instructions: str
    voice: str | None = None
    handoffDescription: str = ""  # the browser SDK's field name
    handoffs: list[str] = Field(default_factory=list)
    tools: list[ToolSpecOut] = Field(default_factory=list)


class ScenarioSummary(BaseModel):
    id: str
    name: str
    description: str = ""
    default_root: str
    agents: list[str]


class ScenarioList(BaseModel):
    scenarios: list[ScenarioSummary]
    default_scenario: str | None = None


class ScenarioOut(BaseModel):
    id: str
    name: str
    description: str = ""
    default_root: str
    agents: list[AgentOut]


def scenario_ids(settings: AgentsSettings) -> list[str]:
    """The configured scenario ids, the default one first."""
    ids = list(settings.scenarios)
    if settings.default_scenario in ids:
        ids.remove(settings.default_scenario)
        ids.insert(0, settings.default_scenario)
    return ids


def get_scenario(settings: AgentsSettings, scenario_id: str | None) -> ScenarioSettings:
    """The scenario `scenario_id` (None: the default one, else the only one); raises
    404 `scenario_not_found`."""
    if scenario_id is None:
        scenario_id = settings.default_scenario or (
            next(iter(settings.scenarios)) if len(settings.scenarios) == 1 else None)
        if scenario_id is None:
            raise NotFound("no scenario named and no default_scenario configured",
                           code="scenario_not_found")
    scenario = settings.scenarios.get(scenario_id)
    if scenario is None:
        raise NotFound(f"no scenario {scenario_id!r} (have: "
                       f"{', '.join(scenario_ids(settings)) or 'none'})",
                       code="scenario_not_found", extra={"scenario_id": scenario_id})
    return scenario


def get_agent(scenario: ScenarioSettings, name: str, *, scenario_id: str = "") -> AgentSettings:
    """An agent of the scenario; raises 404 `agent_not_found`."""
    for agent in scenario.agents:
        if agent.name == name:
            return agent
    raise NotFound(f"scenario {scenario_id!r} has no agent {name!r} (have: "
                   f"{', '.join(a.name for a in scenario.agents)})", code="agent_not_found",
                   extra={"agent": name})


def tool_spec(tool: Tool) -> ToolSpecOut:
    return ToolSpecOut(name=tool.name, description=tool.description,
                       parameters=tool.parameters)


def kernel_tools(kernel: Kernel, names: list[str]) -> list[Tool]:
    tools = kernel.registry.tools
    return [tools[n][1] for n in names if n in tools]


def missing_tools(kernel: Kernel, settings: AgentsSettings) -> list[str]:
    """`scenario.agent: tool` for every tool an agent names that no enabled plugin
    registers (checked at startup)."""
    have = kernel.registry.tools
    problems = [f"{sid}.{agent.name}: {name}" for sid, scenario in settings.scenarios.items()
                for agent in scenario.agents for name in agent.tools if name not in have]
    problems += [f"context_sources: {n}" for n in settings.context_sources if n not in have]
    problems += [f"sdk_tools: {n}" for n in settings.sdk_tools or () if n not in have]
    return problems


def render_agent(kernel: Kernel, agent: AgentSettings) -> AgentOut:
    return AgentOut(name=agent.name, instructions=agent.instructions, voice=agent.voice,
                    handoffDescription=agent.handoff_description,
                    handoffs=list(agent.handoffs),
                    tools=[tool_spec(t) for t in kernel_tools(kernel, agent.tools)])


def render_scenario(kernel: Kernel, scenario_id: str, scenario: ScenarioSettings
                    ) -> ScenarioOut:
    return ScenarioOut(id=scenario_id, name=scenario.name or scenario_id,
                       description=scenario.description, default_root=scenario.root,
                       agents=[render_agent(kernel, a) for a in scenario.agents])


def summarise(scenario_id: str, scenario: ScenarioSettings) -> ScenarioSummary:
    return ScenarioSummary(id=scenario_id, name=scenario.name or scenario_id,
                           description=scenario.description, default_root=scenario.root,
                           agents=[a.name for a in scenario.agents])


def initial_agents(kernel: Kernel, settings: AgentsSettings, scenario_id: str | None,
                   root_agent: str | None = None) -> tuple[str, str, list[AgentOut]]:
    """(scenario id, root agent, the scenario's agents with the root first) for a Realtime
    session; raises 404 `scenario_not_found` / `agent_not_found`."""
    scenario = get_scenario(settings, scenario_id)
    sid = scenario_id or next(k for k, v in settings.scenarios.items() if v is scenario)
    root = get_agent(scenario, root_agent or scenario.root, scenario_id=sid)
    ordered = [root, *(a for a in scenario.agents if a.name != root.name)]
    return sid, root.name, [render_agent(kernel, a) for a in ordered]


def session_agents(kernel: Kernel, settings: AgentsSettings, scenario_id: str | None,
                   root_agent: str | None = None) -> dict[str, Any]:
    """What `/api/session2` hands the browser besides the key: `scenario_id`,
    `root_agent`, `initial_agents` (root first, as dicts), `guardrails`, and the root's
    `instructions` and `voice` for the minted session. Raises 404 `scenario_not_found`
    or `agent_not_found`."""
    sid, root, agents = initial_agents(kernel, settings, scenario_id, root_agent)
    return {"scenario_id": sid, "root_agent": root,
            "initial_agents": [a.model_dump() for a in agents],
            "guardrails": [g.model_dump() for g in settings.guardrails],
            "instructions": agents[0].instructions or None, "voice": agents[0].voice}

"""GET /agents: every agent with its provider, model, tools and status counters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from armillary import AgentSpec, ArmillaryError, Kernel, KernelDep
from armillary_agents.activity import AgentActivity, _iso

router = APIRouter(tags=["agents"])


def activity_of(kernel: Kernel) -> AgentActivity | None:
    from armillary_agents import activity_for

    return activity_for(kernel)


def describe(kernel: Kernel, plugin: str, agent: AgentSpec,
             activity: AgentActivity | None) -> dict[str, Any]:
    try:
        provider = kernel.provider(agent.provider)
        provider_name: str | None = provider.name
        model: str | None = agent.model or provider.default_model or None
        status = "available"
    except ArmillaryError:
        provider_name, model, status = agent.provider, agent.model, "unavailable"
    tools = [t.name for t in kernel.tools_for(agent)]
    counters = (activity.of(agent.name) if activity else None)
    return {
        "agent_id": agent.name,
        "name": agent.name,
        "description": agent.description,
        "provider": provider_name,
        "model": model,
        "tools": tools,
        "capabilities": tools,
        "strategy": agent.strategy,
        "registered_by": plugin,
        "status": status,
        "created_at": _iso(activity.created_at) if activity else None,
        **(counters.as_dict() if counters else {}),
    }


@router.get("/agents")
async def list_agents(kernel: KernelDep) -> dict[str, Any]:
    """The agents both the Pi seed and the multi-agent seed list: name, description,
    provider, model, tools, and counters (tasks, successes, errors, success rate, average
    duration, last activity)."""
    activity = activity_of(kernel)
    if activity is not None:
        activity.drain()
    return {"agents": [describe(kernel, plugin, agent, activity)
                       for plugin, agent in kernel.registry.agents.values()]}

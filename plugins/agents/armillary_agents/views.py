"""What the routes show: a run as a TaskResult, an agent's status, the system status."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from armillary import AgentSpec, ArmillaryError, Kernel, Run, iso

if TYPE_CHECKING:
    from armillary_agents.state import AgentsState


def task_result(run: Run) -> dict[str, Any]:
    """The seed's TaskResult for any run (/agents/{id}/execute's, /v1/tasks', …)."""
    meta = run.metadata
    result: dict[str, Any] | None = None
    if run.result is not None:
        result = {"output": run.result, "steps_taken": run.steps_taken}
        if "operation" in meta:
            result["operation"] = meta["operation"]
    took = (run.finished_at - run.started_at
            if run.finished_at is not None and run.started_at is not None else None)
    return {
        "task_id": run.id,
        "status": run.status.value,
        "result": result,
        "error": run.error.detail if run.error else None,
        "error_code": run.error.code if run.error else None,
        "agent_used": run.agent,
        "timestamp": iso(run.finished_at or run.updated_at),
        "execution_time_seconds": took,
        "priority": meta.get("priority"),
    }


def describe(kernel: Kernel, plugin: str, agent: AgentSpec,
             state: AgentsState | None) -> dict[str, Any]:
    """One agent: the multi-agent seed's AgentStatusResponse fields and the Pi seed's
    (`name`, `description`, `provider`, `model`, `tools`) in one object."""
    activity = state.activity if state else None
    try:
        provider = kernel.provider(agent.provider)
        provider_name: str | None = provider.name
        model: str | None = agent.model or provider.default_model or None
        status = "available"
    except ArmillaryError:
        provider_name, model, status = agent.provider, agent.model, "unavailable"
    tools = [t.name for t in kernel.tools_for(agent)]
    counters = activity.of(agent.name) if activity else None
    return {
        "agent_id": agent.name,
        "agent_type": kernel.strategy_name(agent),
        "name": agent.name,
        "description": agent.description,
        "provider": provider_name,
        "model": model,
        "tools": tools,
        "capabilities": tools,
        "strategy": agent.strategy,
        "registered_by": plugin,
        "status": status,
        "active_tasks": activity.active_runs(agent.name) if activity else 0,
        "created_at": iso(state.started_at if state else time.time()),
        "task_count": 0, "success_count": 0, "error_count": 0, "partial_count": 0,
        "success_rate": 0.0, "avg_task_duration": None, "last_active_at": None,
        "last_error_code": None,
        **(counters.as_dict() if counters else {}),
    }


def agents_of(kernel: Kernel, state: AgentsState | None) -> list[dict[str, Any]]:
    if state is not None:
        state.activity.drain()
    return [describe(kernel, plugin, agent, state)
            for plugin, agent in kernel.registry.agents.values()]


def system_status(kernel: Kernel, state: AgentsState | None) -> dict[str, Any]:
    """The seed's SystemStatusResponse: `operational`, or `degraded` when an agent's
    provider is missing or a plugin failed to load."""
    agents = agents_of(kernel, state)
    failed = any(p.status == "failed" for p in kernel.plugins)
    degraded = failed or any(a["status"] != "available" for a in agents)
    metrics: dict[str, int] = state.metrics.as_dict() if state else {}
    if state is not None:
        metrics["websocket_clients"] = len(state.updates.clients)
        metrics["queued_executes"] = state.admission.waiting
    return {
        "system_status": "degraded" if degraded else "operational",
        "timestamp": iso(time.time()),
        "agents": {a["agent_id"]: a for a in agents},
        "api_metrics": metrics,
    }

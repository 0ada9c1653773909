"""GET /api/scenarios and GET /api/scenarios/{scenario_id}."""

from __future__ import annotations

from fastapi import APIRouter

from armillary import KernelDep
from armillary_realtime.scenarios import (
    ScenarioList,
    ScenarioOut,
    get_scenario,
    render_scenario,
    scenario_ids,
    summarise,
)
from armillary_realtime.settings import AgentsSettings


def make_router(settings: AgentsSettings) -> APIRouter:
    router = APIRouter(tags=["realtime"])

    @router.get("/api/scenarios", response_model=ScenarioList)
    async def scenarios() -> ScenarioList:
        """The server-owned scenarios (the default first), with their agents' names."""
        ids = scenario_ids(settings)
        return ScenarioList(scenarios=[summarise(i, settings.scenarios[i]) for i in ids],
                            default_scenario=settings.default_scenario or
                            (ids[0] if ids else None))

    @router.get("/api/scenarios/{scenario_id}", response_model=ScenarioOut, responses={
        404: {"description": "No such scenario (`scenario_not_found`)"}})
    async def scenario(scenario_id: str, kernel: KernelDep) -> ScenarioOut:
        """One scenario: its agents as the browser's Realtime SDK takes them (name,
        instructions, voice, handoffDescription, handoffs by name, tools as JSON-schema
        function specs) and its default root agent."""
        return render_scenario(kernel, scenario_id, get_scenario(settings, scenario_id))

    return router

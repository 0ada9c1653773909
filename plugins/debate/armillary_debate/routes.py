"""The seed's debate routes: POST /debate/initialize, POST /debate/{id}/control,
GET /debates/{id}, WebSocket /ws/debate-updates."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, WebSocket

from armillary import KernelDep
from armillary_debate import debates, updates
from armillary_debate.schemas import (
    DebateConfigurationRequest,
    DebateControlRequest,
    DebateControlResponse,
    DebateInitializeResponse,
    DebateView,
)
from armillary_debate.settings import DebateSettings

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such debate (`debate_not_found`)"}}


def make_router(settings: DebateSettings) -> APIRouter:
    router = APIRouter(tags=["debate"])

    @router.post("/debate/initialize", response_model=DebateInitializeResponse, responses={
        422: {"description": "Invalid configuration (`validation_error`), an agent that "
                             "is not configured (`unknown_agents`, naming them), none "
                             "selected (`no_agents`) or one selected twice "
                             "(`duplicate_agents`)"}})
    async def initialize_debate(body: DebateConfigurationRequest,
                                kernel: KernelDep) -> DebateInitializeResponse:
        """Store a debate; `POST /debate/{id}/control {"action": "start"}` runs it."""
        debate_id = await debates.initialize(kernel, body, settings)
        return DebateInitializeResponse(debate_id=debate_id)

    @router.post("/debate/{debate_id}/control", response_model=DebateControlResponse,
                 responses={**NOT_FOUND, 409: {
                     "description": "Impossible now: not started yet (`debate_not_started`),"
                                    " started already (`debate_already_started`) or "
                                    "finished (`debate_finished`); `status` says which"}})
    async def control_debate(debate_id: str, body: DebateControlRequest,
                             kernel: KernelDep) -> DebateControlResponse:
        """start | pause | resume | stop. Pause takes effect before the next argument;
        stop ends the debate at once (an argument in flight is cut off)."""
        run = await debates.control(kernel, debate_id, body.action, settings)
        return DebateControlResponse(debate_id=debate_id, action=body.action,
                                     status=run.status.value)

    @router.get("/debates/{debate_id}", response_model=DebateView, responses=NOT_FOUND)
    async def get_debate(debate_id: str, kernel: KernelDep) -> DebateView:
        """Status, mode, current round, every round's arguments by agent, the consensus
        score of each round and the final outcome."""
        return await debates.view(kernel, debate_id)

    @router.websocket("/ws/debate-updates")
    async def debate_updates(ws: WebSocket, kernel: KernelDep,
                             debate_id: str | None = None) -> None:
        await updates.serve(ws, kernel, settings, debate_id)

    return router

"""POST /api/tools/execute: run one of the kernel's tools for the browser.

The tool goes through the `tool` safety stage (`kernel.guard(...).tool(t)`), validates
its arguments against its schema and runs under its timeout. Request problems are
errors in the error model: an unknown tool is 404 `tool_not_found`, a tool the named
scenario agent may not use 403 `tool_not_allowed`, arguments that fail the schema 422
`invalid_tool_arguments`, a call a safety check refuses that check's code and status. A
tool that fails while running is a `ToolResult` with `ok: false` and the error (the
browser passes it on to the model, as the server-side loop does). With `session_id`
the result is also pushed on that session's orchestration channel.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from armillary import ArmillaryError, KernelDep, NotFound, ToolArgumentsError, ToolError
from armillary_realtime import events, sessions
from armillary_realtime.scenarios import get_agent, get_scenario
from armillary_realtime.settings import AgentsSettings


class ToolExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    arguments: dict[str, Any] = Field(default_factory=dict)
    #: push the result on this session's orchestration channel
    session_id: str | None = Field(default=None, max_length=200)
    #: the Realtime function call this answers (echoed back)
    call_id: str | None = Field(default=None, max_length=200)
    #: with `agent`: only that scenario agent's tools may run
    scenario_id: str | None = None
    agent: str | None = None


class ToolErrorOut(BaseModel):
    code: str
    detail: str


class ToolResult(BaseModel):
    name: str
    ok: bool
    result: Any = None
    error: ToolErrorOut | None = None
    call_id: str | None = None
    duration_ms: float


def make_router(settings: AgentsSettings) -> APIRouter:
    router = APIRouter(tags=["realtime"])

    @router.post("/api/tools/execute", response_model=ToolResult, responses={
        403: {"description": "The scenario agent may not use this tool (`tool_not_allowed`)"},
        404: {"description": "`tool_not_found`, `scenario_not_found`, `agent_not_found`, "
                             "`session_not_found` (another principal's SDK session)"},
        422: {"description": "Arguments that fail the tool's schema "
                             "(`invalid_tool_arguments`), or an invalid body"},
        400: {"description": "A safety check refused the call (the check's code)"}})
    async def execute(body: ToolExecuteRequest, kernel: KernelDep) -> ToolResult:
        """Run a kernel tool through the tool safety stage; a ToolResult."""
        entry = kernel.registry.tools.get(body.name)
        if entry is None:
            raise NotFound(f"no tool named {body.name!r} (have: "
                           f"{', '.join(kernel.registry.tools) or 'none'})",
                           code="tool_not_found", extra={"tool": body.name})
        if body.agent is not None:
            agent = get_agent(get_scenario(settings, body.scenario_id), body.agent,
                              scenario_id=body.scenario_id or "")
            if body.name not in agent.tools:
                raise ArmillaryError(f"agent {agent.name!r} may not use tool {body.name!r}",
                                     code="tool_not_allowed", status_code=403)
        owner = None
        if body.session_id:
            owner = await sessions.channel_owner(kernel, settings, body.session_id)
        guard = kernel.guard(session_id=body.session_id, agent=body.agent,
                             route="/api/tools/execute")
        tool = guard.tool(entry[1])
        started = time.perf_counter()
        result: Any = None
        error: ToolErrorOut | None = None
        try:
            result = await tool.invoke(body.arguments)
        except ToolArgumentsError:
            raise
        except ToolError as exc:
            if exc.extra.get("stage") == "tool":  # refused by a safety check
                raise
            error = ToolErrorOut(code=exc.code, detail=exc.detail)
        except Exception as exc:
            error = ToolErrorOut(code="tool_error", detail=f"{type(exc).__name__}: {exc}")
        out = ToolResult(name=body.name, ok=error is None, result=result, error=error,
                         call_id=body.call_id,
                         duration_ms=round((time.perf_counter() - started) * 1000, 3))
        if body.session_id:
            await events.push(kernel, body.session_id, events.TOOL_RESULT, owner=owner,
                              payload=events.ToolResultPushed(
                                  session_id=body.session_id, name=body.name, ok=out.ok,
                                  call_id=body.call_id, result=result,
                                  error=error.model_dump() if error else None))
        return out

    return router

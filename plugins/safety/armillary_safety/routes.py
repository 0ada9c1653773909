"""`/v1/safety/*`: the verdict audit, the live verdict stream, and the rules in force."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from armillary import EventStreams, InvalidRequest, KernelDep
from armillary_safety.audit import TOPIC, Audit, VerdictPayload, entries
from armillary_safety.checks import InputModerator, OutputScanner
from armillary_safety.settings import SafetySettings


class AuditOut(BaseModel):
    #: the scope asked for; null for the newest verdicts of every scope
    scope: str | None = None
    entries: list[VerdictPayload] = Field(default_factory=list)


class RuleOut(BaseModel):
    stage: str
    flag: str
    action: str


def make_router(settings: SafetySettings) -> APIRouter:
    router = APIRouter(prefix="/v1/safety", tags=["safety"])

    @router.get("/audit", response_model=AuditOut, responses={
        422: {"description": "More than one of `run_id`, `conversation_id`, `session_id`, "
                             "`scope` (`invalid_request`)"}})
    async def audit(kernel: KernelDep,
                    run_id: str | None = Query(None, max_length=200),
                    conversation_id: str | None = Query(None, max_length=200),
                    session_id: str | None = Query(None, max_length=200),
                    scope: str | None = Query(None, max_length=200),
                    limit: int = Query(100, ge=1, le=10_000)) -> AuditOut:
        """The verdicts of one run, `/chat` conversation, session or guard (`scope`),
        oldest first; with none of them, the newest verdicts of every scope this server
        process saw. Each names the stage, the action (`allowed`, `flagged`, `redacted`,
        `blocked`), the checks that acted, the code and the flags — never the text."""
        given = [v for v in (run_id, conversation_id, session_id, scope) if v]
        if len(given) > 1:
            raise InvalidRequest("name one of run_id, conversation_id, session_id, scope")
        if not given:
            recent: list[VerdictPayload] = []
            for listener in kernel.safety.listeners:
                if isinstance(listener, Audit):
                    recent = list(listener.recent)[-limit:]
            return AuditOut(entries=recent)
        found = await entries(kernel, settings).get(given[0])
        items = found.items[-limit:] if found is not None else []
        return AuditOut(scope=given[0],
                        entries=[VerdictPayload.model_validate(i.data) for i in items])

    @router.get("/events", response_class=Response, responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
              "description": "Live `safety.verdict` events (SSE), as they happen"},
        503: {"description": "No SSE transport is enabled (`service_unavailable`)"}})
    async def events(request: Request, kernel: KernelDep) -> Response:
        """Every verdict as it happens: SSE events `safety.verdict` (needs the `sse`
        plugin)."""
        return kernel.service(EventStreams).sse_topic(request, TOPIC)

    @router.get("/rules", response_model=list[RuleOut])
    async def rules(kernel: KernelDep) -> list[RuleOut]:
        """The rules in force: stage, flag (`pii:ssn`, `blocked_phrase:0`, …) and action;
        never the patterns themselves."""
        out: list[RuleOut] = []
        for check in kernel.safety.checks:
            if isinstance(check, InputModerator | OutputScanner):
                stage = "input" if isinstance(check, InputModerator) else "output"
                out += [RuleOut(stage=stage, flag=r.flag, action=r.action)
                        for r in check.rules]
        return out

    return router

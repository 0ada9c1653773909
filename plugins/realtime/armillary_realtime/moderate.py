"""`POST /api/moderate`: one moderation decision for a text, server-side.

Two layers, in order: the kernel's safety pipeline (the `input` stage for text a user is
about to send, `output` for an agent's text: whatever checks the enabled plugins
registered — PII redaction, blocklists, …), then, when `moderation_model` is set, OpenAI's
`/v1/moderations` on the text the checks let through. The first layer that objects
decides. The decision names a category the seed's guardrail uses (`OFFENSIVE`,
`OFF_BRAND`, `VIOLENCE`, `NONE`); OpenAI's categories map onto them (violence → VIOLENCE,
the rest → OFFENSIVE), a kernel check's code through `safety_categories`.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from armillary import KernelDep, SafetyBlocked, cancel_on_disconnect
from armillary_realtime.upstream import (
    Category,
    UpstreamSettings,
    platform_client,
    upstream_errors,
    upstream_settings,
)


class ModerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="The text to moderate")
    stage: Literal["input", "output"] = Field(
        default="input", description="`input`: a user's text; `output`: an agent's")
    categories: list[Category] | None = Field(
        default=None, description="Only these upstream categories block (default: all)")


class UpstreamModeration(BaseModel):
    id: str | None = None
    model: str | None = None
    flagged: bool
    #: OpenAI's categories that were flagged
    categories: list[str]


class ModerationDecision(BaseModel):
    allowed: bool
    category: Category
    rationale: str
    #: the text as the safety checks let it through (redacted, maybe)
    text: str
    #: which layer decided a block or redaction: the kernel's checks, or OpenAI's moderation
    source: Literal["safety", "upstream"] | None = None
    #: the blocking check's code (`safety_blocked`, `pii_detected`, `moderation_flagged`, …)
    code: str | None = None
    check: str | None = None
    upstream: UpstreamModeration | None = None


def upstream_category(flagged: list[str]) -> Category:
    return "VIOLENCE" if any(c.startswith("violence") for c in flagged) else "OFFENSIVE"


async def moderate(kernel: Any, settings: UpstreamSettings,
                   body: ModerateRequest) -> ModerationDecision:
    guard = kernel.guard(route="realtime.moderate", stage=body.stage)
    try:
        text = await guard.check(body.stage, body.text)
    except SafetyBlocked as blocked:
        category = settings.safety_categories.get(blocked.code, settings.block_category)
        return ModerationDecision(allowed=False, category=category, rationale=blocked.detail,
                                  text="", source="safety", code=blocked.code,
                                  check=blocked.extra.get("check"))
    redacted = text != body.text
    decision = ModerationDecision(
        allowed=True, category="NONE", text=text,
        rationale="redacted by the safety checks" if redacted else "no policy matched",
        source="safety" if redacted else None)
    if settings.moderation_model is None:
        return decision
    client = platform_client(kernel, settings)
    data = await client.moderations(text, model=settings.moderation_model)
    result = (data.get("results") or [{}])[0]
    flagged = sorted(c for c, hit in (result.get("categories") or {}).items() if hit)
    decision.upstream = UpstreamModeration(id=data.get("id"), model=data.get("model"),
                                           flagged=bool(result.get("flagged")),
                                           categories=flagged)
    if not decision.upstream.flagged:
        return decision
    category = upstream_category(flagged)
    if body.categories is not None and category not in body.categories:
        return decision
    return ModerationDecision(
        allowed=False, category=category, text=text, source="upstream",
        code="moderation_flagged", upstream=decision.upstream,
        rationale=f"flagged by OpenAI moderation: {', '.join(flagged) or 'flagged'}")


def add_routes(router: APIRouter, settings: Any) -> None:
    upstream = upstream_settings(settings)

    @router.post("/api/moderate", summary="Moderate a text (safety checks + OpenAI)",
                 responses=upstream_errors())
    async def moderate_route(request: Request, kernel: KernelDep,
                             body: ModerateRequest) -> ModerationDecision:
        """A ModerationDecision; a block is a 200 with `allowed: false` (the decision is
        the answer), an upstream failure is an error answer (502, or the upstream's
        status)."""
        return await cancel_on_disconnect(request, moderate(kernel, upstream, body))

"""Request and response bodies of the Dvādaśa API (the seed's shapes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from armillary_dvadasa.events import HeadContribution


class SessionOut(BaseModel):
    session_id: str
    user_id: str | None = None


class PromptIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    #: required; a missing or blank prompt is 400 `missing_prompt` (the seed's 400)
    prompt: str | None = Field(default=None, description="The prompt (required)")
    use_all_heads: bool = False


class TransparencyReport(BaseModel):
    head_contributions: list[HeadContribution]
    intent: str
    heads_selected: list[str]
    heads_failed: list[str]
    agreement: dict[str, Any]
    dissent: list[str]
    confidence_score: float
    witness: dict[str, Any]


class FinalResponse(BaseModel):
    task_id: str
    final_answer: str
    transparency_report: TransparencyReport
    head_contributions: list[HeadContribution]
    confidence_score: float


class HistoryEntry(BaseModel):
    prompt: str
    final_answer: str
    task_id: str | None = None
    confidence_score: float | None = None
    at: float


class SessionDetail(SessionOut):
    created_at: float
    updated_at: float
    history: list[HistoryEntry]

"""The event types a Dvādaśa run adds to its log (the WebSocket renders them in the
seed's names: `heads_running`, `head_complete`, `witness_running`, `complete`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

HEADS_RUNNING = "dvadasa.heads_running"
HEAD_COMPLETE = "dvadasa.head_complete"
WITNESS_RUNNING = "dvadasa.witness_running"
SYNTHESIS = "dvadasa.synthesis"

HeadStatus = Literal["ok", "failed", "timeout", "blocked"]


class HeadsRunning(BaseModel):
    heads: list[str]
    intent: str
    head_timeout_seconds: float


class HeadContribution(BaseModel):
    """One head's part in an answer (`head_contributions[…]`)."""

    head_id: str
    name: str
    status: HeadStatus
    #: the start of the answer (`summary_chars`); "" when the head gave none
    summary: str = ""
    answer: str = ""
    provider: str | None = None
    model: str | None = None
    #: `{detail, code}` when the head failed, timed out or was blocked
    error: dict[str, Any] | None = None
    #: milliseconds to the head's first token (None: none came)
    ttft_ms: float | None = None
    duration_ms: float = 0.0
    #: mean similarity to the other heads' answers (see `armillary_dvadasa.agreement`)
    agreement: float | None = None
    dissent: bool = False


class WitnessRunning(BaseModel):
    heads: list[str]
    #: True for `/head <id>`: the one head's answer stands, no Witness call is made (the
    #: event is still sent, so a client sees the seed's sequence whatever the intent)
    skipped: bool = False


class Synthesis(BaseModel):
    """The end of a Dvādaśa run, before its `completed` event; the final answer is the
    run's result."""

    intent: str
    head_contributions: list[HeadContribution]
    agreement: dict[str, Any]
    confidence_score: float
    #: `{status: ok | failed | skipped, provider, model, error?, duration_ms}`
    witness: dict[str, Any]

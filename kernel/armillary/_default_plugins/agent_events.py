"""The event types agent strategies emit, declared with their payload models.

The built-in `single_agent` strategy emits these; other strategies (debate, heads and a
witness, handoff) emit them too where they mean the same thing, so the transports and the
task views read one vocabulary. Each model names what every emitter must send; extra
fields are allowed (a strategy may say more), so the models check the shape, not the
whole wording. A plugin that registers one of these names replaces the declaration here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from armillary import hookimpl
from armillary._hookspecs import RegisterEventType


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow")


class MessagePayload(_Payload):
    """`message`: one message added to the run's conversation (its working memory)."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    #: the content was cut for the log (the model had all of it)
    truncated: bool = False


class TokenPayload(_Payload):
    """`token`: streamed text of the reply being written."""

    delta: str
    step_number: int | None = None


class ToolCallPayload(_Payload):
    """`tool_call`: one tool call, after it ran (or failed)."""

    tool_name: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    success: bool
    result: Any = None
    error: dict[str, Any] | None = None
    id: str | None = None
    duration_seconds: float | None = None
    step_number: int | None = None


class PlanUpdatePayload(_Payload):
    """`plan_update`: the plan as it stands now."""

    current_plan: list[str]
    step_number: int | None = None
    last_reflection: str | None = None


class StepPayload(_Payload):
    """`step`: one step done (for `single_agent`, one model round trip)."""

    step_number: int
    success: bool
    duration_seconds: float | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)


class MemorySummaryPayload(_Payload):
    """`memory_summary`: what the run did, in a few lines."""

    summary: str


class LogPayload(_Payload):
    """`log`: something worth a line in the run's log."""

    message: str
    level: Literal["debug", "info", "warning", "error"] = "info"


class SafetyPayload(_Payload):
    """`safety`: a check redacted or blocked something; never the text that matched."""

    stage: Literal["input", "output", "tool"]
    check: str
    action: Literal["redacted", "blocked"]
    code: str | None = None


AGENT_EVENT_TYPES: dict[str, type[BaseModel]] = {
    "message": MessagePayload,
    "token": TokenPayload,
    "tool_call": ToolCallPayload,
    "plan_update": PlanUpdatePayload,
    "step": StepPayload,
    "memory_summary": MemorySummaryPayload,
    "log": LogPayload,
    "safety": SafetyPayload,
}


@hookimpl(trylast=True)
def register_event_types(register: RegisterEventType) -> None:
    for name, payload in AGENT_EVENT_TYPES.items():
        register(name, payload)

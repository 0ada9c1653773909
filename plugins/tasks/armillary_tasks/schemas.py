"""Request and response bodies, as the Pori roadmap (§5.2, §5.3.1) sketches them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from armillary import ErrorInfo

MAX_STEPS_LIMIT = 1000
#: page sizes (`limit`) of every list
MAX_LIMIT = 1000
#: the largest position (`offset`, `last_event_id`) the API takes: 2**53 - 1, the largest
#: integer every JSON client (JavaScript's included) holds exactly. Far past any real log,
#: and far below SQLite's 2**63 - 1, which a larger value overflowed (a 500, or a stream
#: that broke off)
MAX_OFFSET = 2**53 - 1


def ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


class TaskCreateRequest(BaseModel):
    # strict: `"max_steps": true` or `"stream": "yes"` are mistakes, not 1 and True
    model_config = ConfigDict(strict=True)

    task: str = Field(min_length=1, description="The goal, in plain words (not blank).")
    max_steps: int | None = Field(default=None, ge=1, le=MAX_STEPS_LIMIT,
                                  description="Provider round trips allowed (default: the "
                                              "agent's max_steps, else 50).")
    stream: bool = Field(default=False, description="Answer with `stream_url` to follow.")
    agent: str | None = Field(default=None, description="Agent name (default: `default`).")
    wait: bool = Field(default=False, description="Hold the request until the task ends "
                       "(up to the server's wait timeout) and answer with the result. "
                       "Disconnecting while waiting cancels the task.")

    @field_validator("task")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the task is blank")
        return value


class TaskCreateResponse(BaseModel):
    task_id: str
    status: str
    submitted_at: datetime
    stream_url: str


class TaskStatusResponse(BaseModel):
    task_id: str
    status: str
    steps_taken: int
    success: bool | None
    started_at: datetime | None
    updated_at: datetime
    submitted_at: datetime
    finished_at: datetime | None = None
    agent: str
    max_steps: int
    error: ErrorInfo | None = None


class TaskResultResponse(BaseModel):
    task_id: str
    status: str
    success: bool
    final_answer: str | None
    reasoning: str | None
    steps_taken: int
    error: ErrorInfo | None = None


class TaskListResponse(BaseModel):
    total: int
    items: list[TaskStatusResponse]


class StepInfo(BaseModel):
    step_number: int
    started_at: datetime | None
    duration_seconds: float
    success: bool
    state_snapshot: dict[str, Any] = Field(default_factory=dict)
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)


class StepListResponse(BaseModel):
    task_id: str
    total: int
    items: list[StepInfo]


class ToolCall(BaseModel):
    id: str
    tool_name: str
    parameters: dict[str, Any]
    result: dict[str, Any] | str | None
    success: bool
    timestamp: datetime | None
    duration_seconds: float | None = None
    error: ErrorInfo | None = None


class ToolCallListResponse(BaseModel):
    task_id: str
    total: int
    items: list[ToolCall]


class PlanResponse(BaseModel):
    task_id: str
    current_plan: list[str]
    last_reflection: str | None
    updated_at: datetime


class MemoryMessage(BaseModel):
    role: str
    content: str
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class MemorySnapshotResponse(BaseModel):
    task_id: str
    working_messages: list[MemoryMessage]
    summary: str | None
    vector_hits: int | None = None


class ControlRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    action: Literal["pause", "resume", "stop"]


class ControlResponse(BaseModel):
    task_id: str
    new_status: str
    detail: str


class ToolInfo(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]
    plugin: str


class ToolListResponse(BaseModel):
    total: int
    items: list[ToolInfo]

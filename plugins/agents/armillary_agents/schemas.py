"""The multi-agent seed's bodies (its Pydantic models are the contract: names, patterns,
ranges). Extra fields are additions a seed client ignores."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: queue order of `TaskRequest.priority`, highest first
PRIORITIES = ("urgent", "high", "normal", "low")
#: `GET /tasks?limit=`: the largest page
MAX_TASKS_LIMIT = 1000


class TaskRequest(BaseModel):
    """POST /agents/{id}/execute. Strict, like every body here: `"timeout_seconds": true`
    or `"5"` is a mistake (422), not 1 or 5; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    operation: str = Field(..., min_length=1, max_length=100_000,
                           description="Operation to perform (the run's goal)")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Task parameters")
    priority: str | None = Field("normal", description="Task priority",
                                 pattern="^(low|normal|high|urgent)$")
    timeout_seconds: int | None = Field(None, description="Task timeout in seconds",
                                        ge=1, le=3600)


class TaskResult(BaseModel):
    """A task (a run) as the seed shows it. `error` is the error's sentence; its stable
    code is in `error_code` (an addition)."""

    task_id: str
    status: str
    result: dict[str, Any] | None = None
    error: str | None = None
    error_code: str | None = None
    agent_used: str | None = None
    timestamp: str
    execution_time_seconds: float | None = None
    priority: str | None = None


class TaskListResponse(BaseModel):
    tasks: list[TaskResult]


class AgentStatusResponse(BaseModel):
    """The seed's agent status; the Pi seed's fields (`name`, `description`, `provider`,
    `model`, `tools`) ride along in the same object."""

    model_config = ConfigDict(extra="allow")

    agent_id: str
    agent_type: str
    status: str
    capabilities: list[str]
    task_count: int
    success_count: int
    error_count: int
    success_rate: float
    avg_task_duration: float | None
    created_at: str
    last_active_at: str | None


class AgentListResponse(BaseModel):
    agents: list[AgentStatusResponse]


class SystemStatusResponse(BaseModel):
    system_status: str
    timestamp: str
    agents: dict[str, dict[str, Any]]
    #: the seed's `Dict[str, int]`: every value an int (avg_response_time in whole ms), so
    #: a client validating with the seed's model accepts it
    api_metrics: dict[str, int]

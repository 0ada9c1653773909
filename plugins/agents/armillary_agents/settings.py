"""`[plugins.agents]` settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AgentsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: /ws/agent-updates sends a status_update at least this often, changes or not
    update_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    #: changes are coalesced: at most one status_update per this many seconds
    min_update_interval_seconds: float = Field(default=0.25, ge=0, le=60)
    #: updates waiting for one slow WebSocket client; past it the oldest are dropped
    client_queue_size: int = Field(default=4, ge=1, le=1000)
    #: /agents/{id}/execute runs at once; more wait in priority order (None: the kernel's
    #: max_concurrent_runs)
    max_concurrent_executes: int | None = Field(default=None, ge=1, le=10_000)
    #: how long an execute without timeout_seconds waits for its run before answering
    #: with the run's status (the run goes on; poll GET /tasks/{id})
    wait_timeout_seconds: float = Field(default=3600.0, gt=0, le=86_400)
    #: request durations kept for avg_response_time (the newest ones)
    response_time_window: int = Field(default=1000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _coalescing_within_the_interval(self) -> AgentsSettings:
        if self.min_update_interval_seconds > self.update_interval_seconds:
            raise ValueError("min_update_interval_seconds must not exceed "
                             "update_interval_seconds")
        return self

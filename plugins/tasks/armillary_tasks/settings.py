"""`[plugins.tasks]` settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TasksSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: max_steps when neither the request nor the agent sets one
    default_max_steps: int = Field(default=50, ge=1, le=1000)
    #: strategy for agents that name none (None: `[kernel] default_strategy`)
    default_strategy: str | None = None
    #: how long `POST /v1/tasks` with `wait: true` holds the request before answering 202
    wait_timeout_seconds: float = Field(default=300.0, gt=0)
    #: WebSocket streams send at most one batch per this many seconds (back-pressure)
    stream_min_interval_seconds: float = Field(default=0.2, ge=0)
    #: seconds of silence before a WebSocket heartbeat message
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0)

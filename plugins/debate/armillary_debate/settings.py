"""`[plugins.debate]` settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DebateSettings(BaseModel):
    """```toml
    [plugins.debate]
    heartbeat_interval = 30          # idle seconds before /ws/debate-updates sends a heartbeat
    max_time_per_argument = 120      # a ceiling over each debate's time_limit_per_argument
    moderator_agent = "moderator"    # who moderates autonomous debates (default: the first agent)
    transcript_arguments = 12        # how many earlier arguments a prompt quotes
    ```"""

    model_config = ConfigDict(extra="forbid")

    #: seconds without a message before /ws/debate-updates sends `{"type": "heartbeat"}`
    heartbeat_interval: float = Field(default=30.0, gt=0)
    #: the server's ceiling on one argument, in seconds: an argument is bounded by the
    #: smaller of this and the debate's `time_limit_per_argument` (None: no ceiling)
    max_time_per_argument: float | None = Field(default=None, gt=0)
    #: the agent that moderates autonomous debates when `debate_rules.moderator` names
    #: none (None: the first selected agent)
    moderator_agent: str | None = None
    #: how many of the latest arguments a prompt quotes (the transcript grows each round)
    transcript_arguments: int = Field(default=12, ge=1, le=200)
    #: events a slow /ws/debate-updates client may fall behind before it loses the oldest
    max_queue: int = Field(default=1024, ge=16)
    #: an initialized debate never started is forgotten after this many seconds (None:
    #: kept until started)
    initialized_ttl_seconds: float | None = Field(default=7 * 86400, gt=0)
    #: at most this many initialized, not started debates are kept (the oldest go first)
    max_initialized: int | None = Field(default=10_000, ge=1)

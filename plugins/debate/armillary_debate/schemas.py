"""The seed's request models (field names, patterns and ranges are the contract), the
event payloads the debate strategy emits, and the response bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# --- requests (the seed's DebateConfigurationRequest and DebateControlRequest) ---------


class DebateConfigurationRequest(BaseModel):
    """Debate configuration request model."""

    # strict: `"max_rounds": "5"` or `true` is a mistake, not 5 or 1; an unknown field a typo
    model_config = ConfigDict(strict=True, extra="forbid")

    debate_topic: str = Field(..., description="The main debate topic")
    problem_statement: str = Field(..., description="Detailed problem statement and context")
    debate_mode: str = Field("autonomous", description="Debate mode",
                             pattern="^(structured|freeform|autonomous)$")
    max_rounds: int = Field(5, description="Maximum number of debate rounds", ge=1, le=20)
    max_iterations_per_round: int = Field(3, description="Maximum iterations per round",
                                          ge=1, le=10)
    consensus_threshold: float = Field(0.8, description="Consensus threshold (0.0-1.0)",
                                       ge=0.0, le=1.0)
    time_limit_per_argument: int = Field(60, description="Time limit per argument in seconds",
                                         ge=10, le=300)
    selected_agents: list[str] = Field(..., description="List of selected agent IDs")
    debate_rules: dict[str, Any] = Field(
        default_factory=dict,
        description="Debate rules configuration: `moderator` and `synthesizer` name agents "
                    "(autonomous mode's moderator, the closing synthesis's author); every "
                    "other rule is quoted to the agents")


class DebateControlRequest(BaseModel):
    """Debate control request model."""

    model_config = ConfigDict(strict=True, extra="forbid")

    action: str = Field(..., description="Control action", pattern="^(start|pause|resume|stop)$")


# --- responses --------------------------------------------------------------------------


class DebateInitializeResponse(BaseModel):
    debate_id: str
    status: str = "initialized"


class DebateControlResponse(BaseModel):
    debate_id: str
    action: str
    #: the debate's status after the action (`queued`/`running` after start, `paused`, …)
    status: str


class ArgumentView(BaseModel):
    agent: str
    iteration: int
    phase: str
    text: str
    #: `ok`, `timeout` (cut at the time limit; `text` is what arrived) or `error`
    status: str
    position: str | None = None
    code: str | None = None
    duration_seconds: float
    timestamp: str


class ConsensusView(BaseModel):
    score: float
    reached: bool
    threshold: float
    majority: str | None = None
    positions: dict[str, str | None]


class RoundView(BaseModel):
    round: int
    phase: str
    arguments: list[ArgumentView] = Field(default_factory=list)
    #: each agent's arguments of the round, in order
    arguments_by_agent: dict[str, list[str]] = Field(default_factory=dict)
    consensus: ConsensusView | None = None
    #: autonomous mode: who the moderator gave the floor to (or that it stopped)
    moderator_decisions: list[dict[str, Any]] = Field(default_factory=list)


class OutcomeView(BaseModel):
    #: `consensus`, `max_rounds` or `moderator`
    reason: str
    rounds: int
    consensus_score: float
    consensus_reached: bool
    majority: str | None = None
    synthesis: str | None = None
    synthesis_agent: str | None = None


class ErrorView(BaseModel):
    detail: str
    code: str


class DebateView(BaseModel):
    debate_id: str
    #: `initialized`, then the run's status: queued, running, paused, completed, stopped,
    #: failed, cancelled, interrupted
    status: str
    debate_topic: str
    problem_statement: str
    debate_mode: str
    selected_agents: list[str]
    configuration: dict[str, Any]
    current_round: int
    rounds: list[RoundView]
    consensus_scores: list[float]
    final_outcome: OutcomeView | None = None
    error: ErrorView | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    #: the run's event stream (the tasks plugin's SSE/WebSocket route)
    stream_url: str | None = None


# --- event payloads (declared with register_event_types) --------------------------------


class StartedPayload(BaseModel):
    topic: str
    mode: str
    agents: list[str]
    max_rounds: int
    consensus_threshold: float
    time_limit_seconds: float
    moderator: str | None = None


class RoundStartedPayload(BaseModel):
    round: int
    phase: str


class ArgumentPayload(BaseModel):
    round: int
    iteration: int
    agent: str
    phase: str
    text: str
    status: str
    position: str | None = None
    code: str | None = None
    duration_seconds: float


class ModeratorPayload(BaseModel):
    round: int
    moderator: str
    #: `next` (with `agent`) or `stop`
    decision: str
    agent: str | None = None
    #: the moderator's reply could not be used (timeout, error, no known agent named)
    fallback: bool = False
    code: str | None = None


class ConsensusPayload(BaseModel):
    round: int
    score: float
    reached: bool
    threshold: float
    majority: str | None = None
    positions: dict[str, str | None]


class SynthesisPayload(BaseModel):
    agent: str
    text: str
    status: str
    code: str | None = None


class ConcludedPayload(OutcomeView):
    pass


EVENT_TYPES: dict[str, type[BaseModel]] = {
    "debate.started": StartedPayload,
    "debate.round_started": RoundStartedPayload,
    "debate.argument": ArgumentPayload,
    "debate.moderator": ModeratorPayload,
    "debate.consensus": ConsensusPayload,
    "debate.synthesis": SynthesisPayload,
    "debate.concluded": ConcludedPayload,
}

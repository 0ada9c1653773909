"""The agents part of the `[plugins.realtime]` section: scenarios, SDK sessions,
orchestration and context snapshots.

```toml
[plugins.realtime.scenarios.retail]
name = "Retail"
description = "Customer service for a shop"
default_root = "supervisor"

[[plugins.realtime.scenarios.retail.agents]]
name = "supervisor"
instructions = "Greet the customer and route them."
voice = "sage"
handoff_description = "Greets and routes customers"
handoffs = ["returns"]
tools = ["current_time"]

[[plugins.realtime.scenarios.retail.agents]]
name = "returns"
instructions = "Handle returns and refunds."
handoff_description = "Returns, refunds and exchanges"
keywords = ["refund", "return", "exchange"]
handoffs = ["supervisor"]
```
"""

from __future__ import annotations

from typing import get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from armillary_realtime.upstream import Category


class AgentSettings(BaseModel):
    """One agent of a scenario (a Realtime agent in the browser, a handoff agent in an SDK
    session)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    instructions: str = ""
    voice: str | None = None
    #: what other agents are told about this one when they may hand off to it
    handoff_description: str = ""
    #: agents of the same scenario this one may hand off to
    handoffs: list[str] = Field(default_factory=list)
    #: kernel tool names (checked at startup); [] = none
    tools: list[str] = Field(default_factory=list)
    #: words that make /api/orchestrate prefer this agent (besides its name and
    #: handoff description)
    keywords: list[str] = Field(default_factory=list)
    #: for server-side (SDK session) runs: None = the session's model, then the
    #: provider's default
    model: str | None = None
    provider: str | None = None


class ScenarioSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: display name (default: the scenario's id)
    name: str | None = None
    description: str = ""
    #: the agent a session starts with (default: the first agent)
    default_root: str | None = None
    agents: list[AgentSettings] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> ScenarioSettings:
        names = [a.name for a in self.agents]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"agent names must be unique; repeated: {', '.join(duplicates)}")
        if self.default_root is not None and self.default_root not in names:
            raise ValueError(f"default_root {self.default_root!r} is not one of the "
                             f"scenario's agents ({', '.join(names)})")
        for agent in self.agents:
            unknown = [h for h in agent.handoffs if h not in names]
            if unknown:
                raise ValueError(f"agent {agent.name!r} hands off to unknown agent(s) "
                                 f"{', '.join(unknown)} (have: {', '.join(names)})")
            if agent.name in agent.handoffs:
                raise ValueError(f"agent {agent.name!r} hands off to itself")
        return self

    @property
    def root(self) -> str:
        return self.default_root or self.agents[0].name


#: the categories the seed's guardrail names (what /api/moderate answers)
MODERATION_CATEGORIES: tuple[str, ...] = get_args(Category)


class GuardrailSettings(BaseModel):
    """A guardrail the browser runs (what `/api/session2` lists)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: str = "output"
    endpoint: str = "/api/moderate"
    categories: list[str] = Field(default_factory=lambda: list(MODERATION_CATEGORIES))


class AgentsSettings(BaseModel):
    """Everything of `[plugins.realtime]` the agents routes read."""

    model_config = ConfigDict(extra="forbid")

    scenarios: dict[str, ScenarioSettings] = Field(default_factory=dict)
    #: the scenario listed first and used when a request names none
    default_scenario: str | None = None
    #: guardrails `/api/session2` hands the browser
    guardrails: list[GuardrailSettings] = Field(
        default_factory=lambda: [GuardrailSettings(name="moderation")])
    #: SDK sessions (kept in the kernel's store, conversation kind "realtime.sdk"):
    #: idle this long → forgotten
    sdk_session_ttl_seconds: float = Field(default=86_400.0, gt=0)
    #: items kept per session (oldest drop off)
    sdk_max_items: int = Field(default=500, ge=2)
    #: sessions kept at once (least recently used go first)
    sdk_max_sessions: int = Field(default=10_000, ge=1)
    #: model round trips (tool calls and handoffs included) per message
    sdk_max_steps: int = Field(default=10, ge=1, le=100)
    #: tools of a session's agent when it is not a scenario agent (None = every tool)
    sdk_tools: list[str] | None = None
    #: longest accepted user input, in characters
    sdk_max_input_chars: int = Field(default=32_000, ge=1)
    #: kernel tools called by /api/context/snapshot, each a section of the block
    context_sources: list[str] = Field(default_factory=list)
    #: /api/orchestrate: bonus the current agent gets, so a weak signal does not flap
    orchestration_stickiness: float = Field(default=0.5, ge=0)
    #: /api/orchestrate: weight of a word matched in the agent's last message (the user's
    #: words weigh 1)
    orchestration_agent_weight: float = Field(default=0.5, ge=0)

    @model_validator(mode="after")
    def _default(self) -> AgentsSettings:
        if self.default_scenario is not None and self.default_scenario not in self.scenarios:
            raise ValueError(f"default_scenario {self.default_scenario!r} is not a "
                             f"configured scenario ({', '.join(self.scenarios) or 'none'})")
        return self

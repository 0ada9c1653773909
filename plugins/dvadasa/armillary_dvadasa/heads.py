"""The twelve default heads: each a named perspective with its own instructions.

A head answers the user's prompt from its perspective only; the Witness (see
`armillary_dvadasa.strategy`) reads every head's answer and synthesises. `[plugins.dvadasa]`
can change any head (`[plugins.dvadasa.heads.<id>]`: name, instructions, provider, model,
enabled), add heads, or start from none (`default_heads = false`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_ANSWER = ("Answer the user's prompt from this perspective only, in at most a few short "
           "paragraphs. Begin with a one-sentence position; then give your reasons.")


class Head(BaseModel):
    """One head, as the strategy runs it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    name: str
    instructions: str
    #: a provider name (None: the plugin's `provider`, else the kernel's default)
    provider: str | None = None
    #: a model name (None: the plugin's `model`, else the provider's default)
    model: str | None = None

    def system_prompt(self) -> str:
        return f"You are the {self.name} head of a council of twelve. {self.instructions}"


def _head(id: str, name: str, focus: str) -> Head:
    return Head(id=id, name=name, instructions=f"{focus} {_ANSWER}")


DEFAULT_HEADS: tuple[Head, ...] = (
    _head("logic", "Logic", "Check the reasoning: premises, inferences, contradictions."),
    _head("evidence", "Evidence", "Weigh what is known: facts, data, sources and their "
          "reliability; say what would change your mind."),
    _head("systems", "Systems", "Look at the whole: parts, feedback loops, second-order "
          "effects."),
    _head("strategy", "Strategy", "Think about goals, options and their trade-offs over "
          "time."),
    _head("risk", "Risk", "Find what can go wrong, how likely and how bad, and how to "
          "guard against it."),
    _head("ethics", "Ethics", "Consider who is affected, fairness, harm and duties."),
    _head("empathy", "Empathy", "Take the point of view of the people involved: their "
          "needs, feelings and constraints."),
    _head("creativity", "Creativity", "Offer unexpected options and reframings others "
          "might miss."),
    _head("pragmatics", "Pragmatics", "Say what to actually do next, with the resources at "
          "hand."),
    _head("history", "History", "Bring precedent: what happened in similar cases before."),
    _head("skeptic", "Skeptic", "Challenge the premise and the easy answer; argue the "
          "strongest counter-position."),
    _head("clarity", "Clarity", "Give the simplest correct answer a newcomer would "
          "understand."),
)

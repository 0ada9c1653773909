"""The `[plugins.dvadasa]` section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from armillary_dvadasa.heads import DEFAULT_HEADS, Head

WITNESS_INSTRUCTIONS = (
    "You are the Witness. Several heads, each a different perspective, answered the "
    "user's prompt; their answers follow. Synthesise one final answer: keep what they "
    "agree on, resolve what they can be reconciled on, and state plainly where they "
    "disagree and why. Do not invent claims no head made.")


class HeadOverride(BaseModel):
    """`[plugins.dvadasa.heads.<id>]`: changes to a default head, or a new head (which
    then needs `name` and `instructions`)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    instructions: str | None = None
    provider: str | None = None
    model: str | None = None
    enabled: bool = True


class WitnessSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instructions: str = WITNESS_INSTRUCTIONS
    provider: str | None = None
    model: str | None = None
    timeout_seconds: float = Field(default=120.0, gt=0)


class DvadasaSettings(BaseModel):
    """Settings for the Dvādaśa API (see the plugin's README).

    ```toml
    [plugins.dvadasa]
    model = "llama3.2"            # every head's and the Witness's, unless they name one
    head_timeout_seconds = 60
    [plugins.dvadasa.heads.risk]
    model = "deepseek-r1"
    [plugins.dvadasa.witness]
    model = "llama3.2"
    ```
    """

    model_config = ConfigDict(extra="forbid")

    #: the provider every head and the Witness use unless they name one (None: default)
    provider: str | None = None
    model: str | None = None
    #: start from the twelve default heads (false: only those under `heads`)
    default_heads: bool = True
    heads: dict[str, HeadOverride] = Field(default_factory=dict)
    witness: WitnessSettings = Field(default_factory=WitnessSettings)
    #: a head that has not finished by then is reported `timeout`; the Witness goes on
    head_timeout_seconds: float = Field(default=60.0, gt=0)
    #: characters of a head's answer in its `summary` (the whole answer is `answer`)
    summary_chars: int = Field(default=280, ge=20)
    #: heads asked by `select_heads_for_complexity` for simple and medium prompts (ids,
    #: in order; unknown or disabled ids are skipped); complex prompts ask every head
    simple_heads: list[str] = Field(default_factory=lambda: ["logic", "pragmatics",
                                                             "clarity"])
    medium_heads: list[str] = Field(default_factory=lambda: [
        "logic", "evidence", "risk", "ethics", "pragmatics", "skeptic"])
    #: previous exchanges of the session each head sees as context
    history_turns: int = Field(default=3, ge=0)
    max_prompt_chars: int = Field(default=16_000, ge=1)
    #: sessions idle this long are forgotten; beyond `max_sessions` the least recently
    #: used goes; a session keeps its newest `max_session_items` history items
    session_ttl_seconds: float | None = Field(default=86_400.0, gt=0)
    max_sessions: int | None = Field(default=10_000, ge=1)
    max_session_items: int | None = Field(default=200, ge=2)
    #: the longest a POST …/prompt waits for its run before answering 500 dvadasa_failed
    request_timeout_seconds: float = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _check_heads(self) -> DvadasaSettings:
        self.resolved_heads()  # raises on a new head without name/instructions
        return self

    def resolved_heads(self) -> list[Head]:
        """The enabled heads, defaults first (in their order), then new ones."""
        base = {h.id: h for h in DEFAULT_HEADS} if self.default_heads else {}
        out: dict[str, Head] = dict(base)
        for head_id, override in self.heads.items():
            current = base.get(head_id)
            if not override.enabled:
                out.pop(head_id, None)
                continue
            changes = override.model_dump(exclude={"enabled"}, exclude_unset=True)
            if current is None:
                if override.name is None or override.instructions is None:
                    raise ValueError(f"heads.{head_id}: a new head needs `name` and "
                                     f"`instructions`")
                out[head_id] = Head(id=head_id, **changes)
            else:
                out[head_id] = current.model_copy(update=changes)
        if not out:
            raise ValueError("heads: no head is enabled")
        return list(out.values())

"""The `[plugins.safety]` section."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: what a match does: refuse the text, replace the match, or only record it
PatternAction = Literal["block", "redact", "flag"]
PiiAction = Literal["block", "redact", "flag", "off"]
PiiKind = Literal["ssn", "card", "email", "phone", "iban", "secret"]
ModeratedStage = Literal["input", "output"]
DEFAULT_PII: dict[PiiKind, PiiAction] = {"ssn": "redact", "card": "redact", "email": "redact",
                                        "phone": "redact", "iban": "redact", "secret": "redact"}


def _input_only() -> list[ModeratedStage]:
    return ["input"]


def _default_pii() -> dict[PiiKind, PiiAction]:
    return dict(DEFAULT_PII)


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
    return pattern


class ExtraPattern(BaseModel):
    """One more pattern (the seed's `add_pii_pattern` / `add_blocked_pattern`, as config)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    pattern: str
    action: PatternAction = "redact"
    #: where it applies: the model's replies, the user's messages, or both
    stage: Literal["output", "input", "both"] = "output"

    _check = field_validator("pattern")(_compiles)


class ModerationSettings(BaseModel):
    """The optional model-based check: a provider is asked whether a text is unsafe."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    #: the provider to ask (a registered provider name); none: the kernel's default
    provider: str | None = None
    model: str | None = None
    stages: list[ModeratedStage] = Field(default_factory=_input_only)
    #: the instructions; the model must answer with a line starting SAFE or UNSAFE
    prompt: str = ("You are a content safety classifier. Answer with exactly one word: "
                   "UNSAFE if the user's text asks for or contains clearly harmful content "
                   "(violence, self-harm instructions, sexual content involving minors, "
                   "malware), otherwise SAFE.")
    #: a provider that fails or answers something else: let the text through (open) or
    #: refuse it (closed, 503 `moderation_unavailable`)
    on_error: Literal["open", "closed"] = "closed"
    timeout_seconds: float = Field(default=10.0, gt=0)


class SafetySettings(BaseModel):
    """Input moderation, output PII scanning and the verdict audit.

    ```toml
    [plugins.safety]
    blocked_patterns = ["(?i)ignore (all )?previous instructions"]
    blocked_phrases = ["rm -rf /"]
    output_blocked_patterns = []
    input_pii = "off"            # off | redact | block: PII in the user's message

    [plugins.safety.pii]         # per PII kind: redact | block | flag | off
    ssn = "redact"
    card = "redact"

    [[plugins.safety.patterns]]  # more patterns, as config
    name = "employee_id"
    pattern = "EMP-\\\\d{6}"
    action = "redact"
    stage = "output"
    ```
    """

    model_config = ConfigDict(extra="forbid")

    #: input: regular expressions that refuse a message (400 `input_blocked`)
    blocked_patterns: list[str] = Field(default_factory=list)
    #: input: phrases that refuse a message, matched whole, ignoring case and spacing
    blocked_phrases: list[str] = Field(default_factory=list)
    #: input: what PII in the user's message does (`redact`: the model gets it redacted)
    input_pii: PiiAction = "off"
    #: output: regular expressions that refuse a reply (`output_blocked`)
    output_blocked_patterns: list[str] = Field(default_factory=list)
    #: output: per built-in PII kind, what a match does
    pii: dict[PiiKind, PiiAction] = Field(default_factory=_default_pii)
    patterns: list[ExtraPattern] = Field(default_factory=list)
    #: what a redacted match becomes; `{name}` is the pattern's name. It must not itself
    #: match a pattern
    redaction: str = "[redacted:{name}]"
    #: the longest match the stream scanner must see at once: streams are held back by
    #: this many characters (at least the longest built-in match, 160)
    span: int = Field(default=160, ge=16, le=4096)
    #: record every verdict (store, kind "safety") and publish it on the bus
    audit: bool = True
    #: verdicts kept per run / conversation / session
    audit_max_entries: int = Field(default=1000, ge=1)
    audit_ttl_seconds: float = Field(default=7 * 86400.0, gt=0)
    audit_max_scopes: int = Field(default=10_000, ge=1)
    #: newest verdicts of every scope kept in memory for `GET /v1/safety/audit`
    audit_recent: int = Field(default=1000, ge=1)
    moderation: ModerationSettings = Field(default_factory=ModerationSettings)

    @field_validator("pii", mode="before")
    @classmethod
    def _pii_defaults(cls, value: object) -> object:
        # naming one kind keeps the others at their default
        return {**DEFAULT_PII, **value} if isinstance(value, dict) else value

    _check_input = field_validator("blocked_patterns", "output_blocked_patterns")(
        lambda v: [_compiles(p) for p in v])

    @model_validator(mode="after")
    def _redaction_ok(self) -> SafetySettings:
        try:
            self.redaction.format(name="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"redaction {self.redaction!r} is not a valid template (its "
                             f"only placeholder may be {{name}}): {exc}") from None
        return self

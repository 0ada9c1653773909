"""Safety checks and the pipeline that runs them at stages `input`, `output` and `tool`.

Routes and strategies do not call the pipeline themselves: `armillary._guard.Guard` binds
it to one run or conversation and wraps providers and tools, so every model call is
checked — input before it, output on the stream (with a bounded hold-back window), the
`tool` stage before each tool runs.
"""

from __future__ import annotations

import abc
from typing import Any, Literal

from armillary._errors import ArmillaryError
from armillary._models import Verdict

Stage = Literal["input", "output", "tool"]

#: the HTTP status of a safety block, on every route (the Dvādaśa seed's 400)
BLOCKED_STATUS = 400


class SafetyCheck(abc.ABC):
    """A check registered through `register_safety_checks`.

    `check` returns a `Verdict`: `allowed=False` blocks (with `code` and `reason`);
    `redacted` replaces the text (the pipeline passes it on to later checks).

    Streams: a check with `incremental = True` can judge a stream piece by piece. It is
    given the text not yet sent to the client (always at least the last `span`
    characters), so it must find every match no longer than `span` characters, and its
    redaction must not itself match. While the stream goes on, `context["final"]` is
    False: a match that reaches the end of the text may still grow, so leave it for a
    later call (it stays unsent meanwhile). The stream is held back by the largest `span`
    of the incremental output checks. A check with `incremental = False` (the default) needs
    the whole text: a stream it checks is held until the model has finished.
    """

    name: str = ""
    stages: frozenset[Stage] = frozenset({"input", "output"})
    #: can judge the unsent tail of a stream (see the class docstring)
    incremental: bool = False
    #: the longest text an incremental check must see at once to find a match
    span: int = 64

    @abc.abstractmethod
    async def check(self, text: str, *, stage: Stage, context: dict[str, Any]) -> Verdict: ...


class SafetyBlocked(ArmillaryError):
    """A safety check refused the text. `code` is the check's code, or `<stage>_blocked`;
    `extra` names the stage and the check (never the matched text)."""

    code = "safety_blocked"
    status_code = BLOCKED_STATUS

    @classmethod
    def from_verdict(cls, stage: Stage, verdict: Verdict) -> SafetyBlocked:
        return cls(verdict.reason or f"the {stage} was blocked by a safety check",
                   code=verdict.code or f"{stage}_blocked",
                   extra={"stage": stage, "check": verdict.check})


class SafetyPipeline:
    """Runs every check registered for a stage, in registration order."""

    def __init__(self, checks: list[SafetyCheck]) -> None:
        self.checks = checks
        self._by_stage: dict[str, list[SafetyCheck]] = {
            stage: [c for c in checks if stage in c.stages]
            for stage in ("input", "output", "tool")}

    def for_stage(self, stage: Stage) -> list[SafetyCheck]:
        return self._by_stage[stage]

    async def run(self, stage: Stage, text: str, context: dict[str, Any] | None = None, *,
                  checks: list[SafetyCheck] | None = None) -> Verdict:
        """The first blocking verdict, or an allowing one carrying any redaction (and in
        `check`, the names of the checks that redacted, comma-separated)."""
        current, redacted_by = text, []
        for check in self.for_stage(stage) if checks is None else checks:
            verdict = await check.check(current, stage=stage, context=context or {})
            if not verdict.allowed:
                return verdict.model_copy(update={"check": verdict.check or check.name})
            if verdict.redacted is not None and verdict.redacted != current:
                current = verdict.redacted
                redacted_by.append(verdict.check or check.name)
        return Verdict(allowed=True, redacted=current if redacted_by else None,
                       check=",".join(redacted_by))

"""Safety checks and the pipeline that runs them at stages `input`, `output` and `tool`."""

from __future__ import annotations

import abc
from typing import Any, Literal

from armillary.models import Verdict

Stage = Literal["input", "output", "tool"]


class SafetyCheck(abc.ABC):
    """A check registered through `register_safety_checks`.

    `check` returns a `Verdict`: `allowed=False` blocks (with `code` and `reason`);
    `redacted` replaces the text (the pipeline passes it on to later checks).
    """

    name: str = ""
    stages: frozenset[Stage] = frozenset({"input", "output"})

    @abc.abstractmethod
    async def check(self, text: str, *, stage: Stage, context: dict[str, Any]) -> Verdict: ...


class SafetyPipeline:
    """Runs every check registered for a stage, in registration order."""

    def __init__(self, checks: list[SafetyCheck]) -> None:
        self.checks = checks

    def for_stage(self, stage: Stage) -> list[SafetyCheck]:
        return [c for c in self.checks if stage in c.stages]

    async def run(self, stage: Stage, text: str, context: dict[str, Any] | None = None) -> Verdict:
        """The first blocking verdict, or an allowing one carrying any redaction."""
        current, redacted = text, False
        for check in self.for_stage(stage):
            verdict = await check.check(current, stage=stage, context=context or {})
            if not verdict.allowed:
                return verdict.model_copy(update={"check": verdict.check or check.name})
            if verdict.redacted is not None:
                current, redacted = verdict.redacted, True
        return Verdict(allowed=True, redacted=current if redacted else None)

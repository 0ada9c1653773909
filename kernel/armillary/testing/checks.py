"""Safety checks for tests: regular expressions that redact or block.

`PatternCheck` is incremental (it can judge a stream piece by piece) unless told not to
be; `PII` is one that redacts US social security numbers and e-mail addresses, what the
safety tests stream across chunk boundaries.
"""

from __future__ import annotations

import re
from typing import Any

from armillary._models import Verdict
from armillary._safety import SafetyCheck, Stage

SSN = r"\b\d{3}-\d{2}-\d{4}\b"
EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"


class PatternCheck(SafetyCheck):
    """Redacts (or, with `block=True`, refuses) text matching any of `patterns`.

    Records every text it was shown in `seen`, as (stage, text)."""

    span = 96

    def __init__(self, patterns: dict[str, str], *, name: str = "patterns",
                 stages: frozenset[Stage] = frozenset({"input", "output"}),
                 block: bool = False, incremental: bool = True) -> None:
        self.name = name
        self.stages = stages
        self.block = block
        self.incremental = incremental
        self._patterns = {label: re.compile(p) for label, p in patterns.items()}
        self.seen: list[tuple[str, str]] = []

    async def check(self, text: str, *, stage: Stage, context: dict[str, Any]) -> Verdict:
        self.seen.append((stage, text))
        # on a stream's unsent tail (final=False) a match reaching the end may still grow
        # ("bob@example.co" + "m"): leave it for the next look, it stays unsent meanwhile
        end = len(text) if context.get("final", True) else len(text) - 1
        found: list[str] = []
        for label, pattern in self._patterns.items():
            def mark(m: re.Match[str], label: str = label) -> str:
                if m.end() > end:
                    return m.group(0)
                found.append(label)
                return f"[{label}]"

            text = pattern.sub(mark, text)
        if not found:
            return Verdict()
        if self.block:
            return Verdict(allowed=False, code=f"{stage}_blocked",
                           reason=f"the {stage} contains {', '.join(dict.fromkeys(found))}")
        return Verdict(redacted=text, reason=", ".join(dict.fromkeys(found)))


def PII(*, block: bool = False, incremental: bool = True,
        stages: frozenset[Stage] = frozenset({"input", "output"})) -> PatternCheck:
    """SSNs and e-mail addresses, redacted as `[ssn]` and `[email]` (or blocked)."""
    return PatternCheck({"ssn": SSN, "email": EMAIL}, name="pii", block=block,
                        incremental=incremental, stages=stages)

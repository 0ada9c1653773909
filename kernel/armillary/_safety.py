"""Safety checks and the pipeline that runs them at stages `input`, `output` and `tool`.

Routes and strategies do not call the pipeline themselves: `armillary._guard.Guard` binds
it to one run or conversation and wraps providers and tools, so every model call is
checked — input before it, output on the stream (with a bounded hold-back window), the
`tool` stage before each tool runs.

Every verdict a guard reaches (allowed ones too) is also handed, as a `VerdictRecord`, to
the pipeline's listeners (`pipeline.add_listener(fn)`): the stage, the checks that acted,
the action, the code and the checks' `flags` (what kind of thing they found, e.g.
`pii:ssn`), and the guard's ids (run, conversation, session). Never the text checked: a
listener can publish or store a record as it is. The `safety` plugin audits them.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

from armillary._errors import ArmillaryError
from armillary._models import Verdict

log = logging.getLogger("armillary.safety")

Stage = Literal["input", "output", "tool"]

#: the HTTP status of a safety block, on every route (the Dvādaśa seed's 400)
BLOCKED_STATUS = 400


#: what a guard did with a text: let it through unchanged, let it through but a check
#: flagged something (`flags`), let it through redacted, or refused it; `error`: a check
#: raised (an `ArmillaryError`, e.g. a moderation model that cannot be reached), which
#: the caller gets as that error
Action = Literal["allowed", "flagged", "redacted", "blocked", "error"]


class FlaggedVerdict(Verdict):
    """A verdict that also says what the check found (`flags`, e.g. `["pii:ssn"]`):
    labels, never the matched text. Make one with `SafetyCheck.verdict(...)`."""

    flags: list[str] = Field(default_factory=list)


def flags_of(verdict: Verdict) -> list[str]:
    return list(getattr(verdict, "flags", ()))


class VerdictRecord(BaseModel):
    """One verdict a guard reached, as listeners get it (see the module docstring)."""

    stage: Stage
    action: Action
    #: the checks that acted (blocked, redacted or flagged), comma-separated
    check: str = ""
    code: str | None = None
    flags: list[str] = Field(default_factory=list)
    #: the guard's scope: its run id, else conversation id, else session id, else its
    #: own `grd_…` id
    scope: str
    run_id: str | None = None
    conversation_id: str | None = None
    session_id: str | None = None
    #: the guard's other string context (agent, provider, model), never a tool's arguments
    context: dict[str, str] = Field(default_factory=dict)
    #: the output of a stream (judged piece by piece; the record is the whole stream's)
    streamed: bool = False
    #: False: the stream stopped before its end (the caller left); the record covers
    #: what was judged until then
    complete: bool = True
    #: the guard's own listener (a run's) already put it in the run's event log
    logged: bool = False
    at: float = Field(default_factory=time.time)


VerdictListenerFn = Callable[[VerdictRecord], Awaitable[None]]


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

    @staticmethod
    def verdict(*, flags: Iterable[str] = (), allowed: bool = True, check: str = "",
                reason: str | None = None, code: str | None = None,
                redacted: str | None = None) -> Verdict:
        """A verdict carrying `flags` (labels of what was found, never the text), which
        the audit records with the stage and the action."""
        return FlaggedVerdict(allowed=allowed, check=check, reason=reason, code=code,
                              redacted=redacted, flags=list(dict.fromkeys(flags)))


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
        self.listeners: list[VerdictListenerFn] = []

    def add_listener(self, listener: VerdictListenerFn) -> None:
        """Call `listener(record)` for every verdict any guard on this pipeline reaches
        (awaited, in the request's path: keep it quick)."""
        self.listeners.append(listener)

    def remove_listener(self, listener: VerdictListenerFn) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    async def report(self, record: VerdictRecord) -> None:
        """Hand `record` to every listener; a listener that fails is logged, and neither
        stops the others nor the request."""
        for listener in list(self.listeners):
            try:
                await listener(record)
            except Exception:
                log.exception("safety verdict listener %r failed", listener)

    def for_stage(self, stage: Stage) -> list[SafetyCheck]:
        return self._by_stage[stage]

    async def run(self, stage: Stage, text: str, context: dict[str, Any] | None = None, *,
                  checks: list[SafetyCheck] | None = None) -> Verdict:
        """The first blocking verdict, or an allowing one carrying any redaction (and in
        `check`, the names of the checks that redacted, comma-separated). Either is a
        `FlaggedVerdict` whose `flags` are every flag the checks that ran raised, and
        whose `check`, when nothing was redacted or blocked, names the checks that
        flagged."""
        current, redacted_by, flagged_by = text, [], []
        flags: list[str] = []
        for check in self.for_stage(stage) if checks is None else checks:
            verdict = await check.check(current, stage=stage, context=context or {})
            found = flags_of(verdict)
            flags.extend(found)
            if not verdict.allowed:
                return FlaggedVerdict(**{**verdict.model_dump(exclude={"flags"}),
                                         "check": verdict.check or check.name,
                                         "flags": list(dict.fromkeys(flags))})
            if verdict.redacted is not None and verdict.redacted != current:
                current = verdict.redacted
                redacted_by.append(verdict.check or check.name)
            elif found:
                flagged_by.append(verdict.check or check.name)
        return FlaggedVerdict(allowed=True, redacted=current if redacted_by else None,
                              check=",".join(redacted_by or flagged_by),
                              flags=list(dict.fromkeys(flags)))

"""The seed's `InputModerator` and `OutputScanner`, as kernel safety checks.

Both are built from one `Rules` list (pattern, action, flag label) and applied in order:
a `block` match refuses the text, a `redact` match is replaced by the redaction, a `flag`
match is only recorded. Flags are labels (`pii:ssn`, `pattern:employee_id`,
`blocked_pattern:0`), never the matched text, and so are the reasons.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from armillary import SafetyCheck, Stage, Verdict
from armillary_safety.patterns import BUILTIN, MAX_MATCH
from armillary_safety.settings import SafetySettings


@dataclass(frozen=True)
class Rule:
    flag: str
    regex: re.Pattern[str]
    action: str
    validate: Callable[[str], bool] | None = None
    #: what a redaction says (the pattern's name)
    name: str = ""
    #: a text this does not find cannot match (see `PiiPattern.prefilter`)
    prefilter: Callable[[str], object] | None = None


@dataclass
class Scan:
    """What the rules made of a text."""

    text: str
    flags: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    redacted: bool = False


def apply_rules(rules: list[Rule], text: str, redaction: str, *, final: bool = True) -> Scan:
    """Apply `rules` in order. With `final=False` (a stream's unsent tail) a match that
    reaches the end of the text may still grow, so it is left for a later look."""
    scan = Scan(text)
    for rule in rules:
        if rule.prefilter is not None and not rule.prefilter(scan.text):
            continue
        end = len(scan.text) if final else len(scan.text) - 1

        def act(m: re.Match[str], rule: Rule = rule, end: int = end) -> str:
            if m.end() > end or (rule.validate is not None and not rule.validate(m.group(0))):
                return m.group(0)
            scan.flags.append(rule.flag)
            if rule.action == "block":
                scan.blocked.append(rule.flag)
            elif rule.action == "redact":
                scan.redacted = True
                return redaction.format(name=rule.name)
            return m.group(0)

        scan.text = rule.regex.sub(act, scan.text)
        if scan.blocked:
            break
    scan.flags = list(dict.fromkeys(scan.flags))
    return scan


def pii_rules(actions: dict[str, str]) -> list[Rule]:
    return [Rule(f"pii:{p.name}", p.regex, actions[p.name], p.validate, p.name, p.prefilter)
            for p in BUILTIN.values() if actions.get(p.name, "off") != "off"]


def extra_rules(settings: SafetySettings, stage: str) -> list[Rule]:
    return [Rule(f"pattern:{p.name}", re.compile(p.pattern), p.action, None, p.name)
            for p in settings.patterns if p.stage in (stage, "both")]


def phrase_regex(phrase: str) -> re.Pattern[str]:
    """A phrase matched whole (not inside a longer word), ignoring case and spacing."""
    words = [re.escape(w) for w in phrase.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


@dataclass
class ModerationResult:
    """The seed's `ModerationResult`."""

    allowed: bool
    transformed: str | None = None
    reason: str | None = None
    flags: list[str] = field(default_factory=list)


@dataclass
class OutputScanResult:
    """The seed's `OutputScanResult`."""

    passed: bool
    flags: list[str] = field(default_factory=list)
    sanitized: str | None = None
    reason: str | None = None


class InputModerator(SafetyCheck):
    """Pre-check of the user's message: blocked patterns and phrases refuse it (400
    `input_blocked`); with `input_pii` or input-stage `patterns`, matches are redacted
    (the model gets the transformed text) or refuse it."""

    name = "input_moderator"
    stages = frozenset({"input"})

    def __init__(self, settings: SafetySettings) -> None:
        self.redaction = settings.redaction
        self.rules: list[Rule] = [
            *(Rule(f"blocked_pattern:{i}", re.compile(p), "block")
              for i, p in enumerate(settings.blocked_patterns)),
            *(Rule(f"blocked_phrase:{i}", phrase_regex(p), "block")
              for i, p in enumerate(settings.blocked_phrases) if p.strip()),
            *extra_rules(settings, "input"),
        ]
        if settings.input_pii != "off":
            self.rules += pii_rules(dict.fromkeys(BUILTIN, settings.input_pii))

    def add_blocked_pattern(self, pattern: str) -> None:
        self.rules.insert(0, Rule(f"blocked_pattern:{len(self.rules)}", re.compile(pattern),
                                  "block"))

    def add_blocked_phrase(self, phrase: str) -> None:
        self.rules.insert(0, Rule(f"blocked_phrase:{len(self.rules)}", phrase_regex(phrase),
                                  "block"))

    def moderate(self, text: str) -> ModerationResult:
        scan = apply_rules(self.rules, text, self.redaction)
        if scan.blocked:
            return ModerationResult(False, reason=f"the message was refused "
                                    f"({', '.join(scan.blocked)})", flags=scan.flags)
        return ModerationResult(True, scan.text if scan.redacted else None, flags=scan.flags)

    async def check(self, text: str, *, stage: Stage, context: dict[str, Any]) -> Verdict:
        result = self.moderate(text)
        return self.verdict(allowed=result.allowed, flags=result.flags, reason=result.reason,
                            code=None if result.allowed else "input_blocked",
                            redacted=result.transformed)


class OutputScanner(SafetyCheck):
    """Post-check of the model's reply: PII (SSN, card numbers that pass Luhn, e-mail,
    phone, IBANs that pass mod-97, API-key-like secrets), blocked patterns and extra
    patterns, each blocking (`output_blocked`), redacting or flagging. Incremental: it
    judges a stream's unsent tail, so streams are held back by only `span` characters."""

    name = "output_scanner"
    stages = frozenset({"output"})
    incremental = True

    def __init__(self, settings: SafetySettings) -> None:
        self.redaction = settings.redaction
        self.span = max(settings.span, MAX_MATCH)
        self.rules: list[Rule] = [
            *(Rule(f"blocked_pattern:{i}", re.compile(p), "block")
              for i, p in enumerate(settings.output_blocked_patterns)),
            *extra_rules(settings, "output"),
            *pii_rules({str(k): str(v) for k, v in settings.pii.items()}),
        ]

    def add_pii_pattern(self, name: str, pattern: str, action: str = "redact") -> None:
        self.rules.append(Rule(f"pii:{name}", re.compile(pattern), action, None, name))

    def add_blocked_pattern(self, pattern: str) -> None:
        self.rules.insert(0, Rule(f"blocked_pattern:{len(self.rules)}", re.compile(pattern),
                                  "block"))

    def scan(self, text: str, *, final: bool = True) -> OutputScanResult:
        scan = apply_rules(self.rules, text, self.redaction, final=final)
        if scan.blocked:
            return OutputScanResult(False, scan.flags, reason=f"the reply was refused "
                                    f"({', '.join(scan.blocked)})")
        return OutputScanResult(True, scan.flags, scan.text if scan.redacted else None)

    async def check(self, text: str, *, stage: Stage, context: dict[str, Any]) -> Verdict:
        result = self.scan(text, final=bool(context.get("final", True)))
        return self.verdict(allowed=result.passed, flags=result.flags, reason=result.reason,
                            code=None if result.passed else "output_blocked",
                            redacted=result.sanitized)

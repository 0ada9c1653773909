"""What the user asked for (`parse_user_input`) and which heads answer it
(`select_heads_for_complexity`).

Intents, from the prompt's first word (or two): the seed names the intents (`normal`,
`head_strategy`, `show_dissent`, …) and the `/head <id>` command; every other spelling
below is accepted so a client may use the intent's own name as its command:

- `normal`: anything else; the heads are chosen by complexity (or all, `use_all_heads`).
- `head_strategy`: `/head <id> [question]` (also `/head_strategy <id>`) asks exactly one
  head; the Witness is skipped (one voice has nothing to reconcile). Without a question,
  the session's last prompt.
- `show_dissent`: `/show_dissent [question]`, `/show dissent`, `/show-dissent` or
  `/dissent`: every head, and the Witness is asked to lay out the disagreements; the
  reply lists the dissenting heads. Without a question, the session's last prompt.
- `all_heads`: `/all [question]` (also `/all_heads`, `/all-heads`): every head, as
  `use_all_heads` does.

Commands are case-insensitive; an unknown `/word` is a normal prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Intent = Literal["normal", "head_strategy", "show_dissent", "all_heads"]

_COMMANDS: dict[str, Intent] = {
    "/head": "head_strategy", "/head_strategy": "head_strategy",
    "/head-strategy": "head_strategy",
    "/show_dissent": "show_dissent", "/show-dissent": "show_dissent",
    "/dissent": "show_dissent",
    "/all": "all_heads", "/all_heads": "all_heads", "/all-heads": "all_heads"}
#: two-word spellings
_TWO_WORD: dict[tuple[str, str], Intent] = {("/show", "dissent"): "show_dissent"}
#: words that mark a prompt asking for judgement, not a fact
_COMPLEX = re.compile(
    r"\b(compare|trade-?offs?|pros and cons|should|strategy|design|risks?|ethic\w*|"
    r"evaluate|decide|decision|plan|why|implications?|versus|vs\.?)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ParsedInput:
    intent: Intent
    #: the question the heads answer ("" when the command gave none)
    prompt: str
    #: `/head <id>`: the head asked
    head_id: str | None = None


def parse_user_input(text: str) -> ParsedInput:
    """The intent of a prompt and the question left once the command is taken off."""
    stripped = text.strip()
    words = stripped.split(None, 2)
    if not words:
        return ParsedInput("normal", "")
    first = words[0].lower()
    intent = None
    if len(words) >= 2:
        intent = _TWO_WORD.get((first, words[1].lower()))
    if intent is not None:
        rest = words[2] if len(words) > 2 else ""
    else:
        intent = _COMMANDS.get(first)
        rest = stripped[len(words[0]):]
    if intent is None:
        return ParsedInput("normal", stripped)
    if intent == "head_strategy":
        head_id, *question = rest.split(None, 1) or [""]
        return ParsedInput(intent, question[0].strip() if question else "",
                           head_id=head_id.lower() or None)
    return ParsedInput(intent, rest.strip())


def complexity(prompt: str) -> Literal["simple", "medium", "complex"]:
    """A cheap measure: length, clauses, and words that ask for judgement."""
    words = len(prompt.split())
    marks = len(_COMPLEX.findall(prompt)) + prompt.count("?") // 2
    if words > 60 or marks >= 2 or (words > 25 and marks):
        return "complex"
    if words > 15 or marks:
        return "medium"
    return "simple"


def select_heads_for_complexity(prompt: str, available: list[str], *, simple: list[str],
                                medium: list[str]) -> list[str]:
    """Head ids for a prompt: the `simple` or `medium` list (those available) by its
    complexity, every available head for a complex one (or when a list names none)."""
    level = complexity(prompt)
    if level == "complex":
        return list(available)
    chosen = [h for h in (simple if level == "simple" else medium) if h in available]
    return chosen or list(available)

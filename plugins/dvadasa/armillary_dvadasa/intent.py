"""What the user asked for (`parse_user_input`) and which heads answer it
(`select_heads_for_complexity`).

Intents, from the prompt's first word:

- `normal`: anything else; the heads are chosen by complexity (or all, `use_all_heads`).
- `head_strategy`: `/head <id> [question]` asks exactly one head; the Witness is skipped
  (one voice has nothing to reconcile). Without a question, the session's last prompt.
- `show_dissent`: `/dissent [question]` (or `/show_dissent`): every head, and the Witness
  is asked to lay out the disagreements; the reply lists the dissenting heads.
- `all_heads`: `/all [question]`: every head, as `use_all_heads` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Intent = Literal["normal", "head_strategy", "show_dissent", "all_heads"]

_COMMANDS: dict[str, Intent] = {"/head": "head_strategy", "/dissent": "show_dissent",
                                "/show_dissent": "show_dissent", "/all": "all_heads"}
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
    first, _, rest = stripped.partition(" ")
    intent = _COMMANDS.get(first.lower())
    if intent is None:
        return ParsedInput("normal", stripped)
    if intent == "head_strategy":
        head_id, _, question = rest.strip().partition(" ")
        return ParsedInput(intent, question.strip(), head_id=head_id.lower() or None)
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

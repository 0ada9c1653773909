"""Measured agreement between the heads' answers, and the confidence derived from it.

Method (what `transparency_report.agreement.method` names):

1. Each answer becomes the set of its content words: lower-cased runs of letters and
   digits, stop words and words shorter than three characters dropped.
2. The similarity of two heads is the Jaccard index of their sets, |A and B| / |A or B|.
3. `agreement` is the mean over every pair of heads that answered; each head's own score
   is its mean similarity to the others. A head whose score is below half the mean
   agreement (and below 0.5) is listed as dissenting.
4. `confidence_score` = agreement * coverage, where coverage is the share of the heads
   asked that answered (a failed or timed-out head lowers it). With a single answer
   agreement cannot be measured: confidence is 0.5 * coverage.

Jaccard over word sets rewards heads that talk about the same things; it is cheap (no
model, no embeddings) and deterministic, and reads low for prose (0.2 to 0.4 is typical of
heads that broadly agree), which is why dissent is judged relative to the mean.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

METHOD = "mean pairwise Jaccard of content-word sets * coverage"

_WORD = re.compile(r"[a-z0-9]+")
_STOP_WORDS = """
a about above after again all also am an and any are as at be because been before being
both but by can could did do does doing down during each few for from further had has have
having he her here hers him his how i if in into is it its itself just me more most my no
nor not now of off on once only or other our out over own same she should so some such than
that the their them then there these they this those through to too under until up very was
we were what when where which while who whom why will with would you your yours
"""
_STOP = frozenset(_STOP_WORDS.split())


def content_words(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOP)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 1.0


@dataclass(frozen=True, slots=True)
class Agreement:
    score: float | None
    confidence: float
    coverage: float
    #: each answering head's mean similarity to the others
    per_head: dict[str, float] = field(default_factory=dict)
    dissenting: list[str] = field(default_factory=list)
    pairs: int = 0

    def report(self) -> dict[str, object]:
        return {"method": METHOD, "score": self.score, "coverage": self.coverage,
                "pairs": self.pairs, "per_head": self.per_head,
                "dissenting_heads": self.dissenting}


def measure(answers: dict[str, str], asked: int) -> Agreement:
    """Agreement among `answers` (head id → text) of `asked` heads (see the module
    docstring)."""
    coverage = len(answers) / asked if asked else 0.0
    if len(answers) < 2:
        return Agreement(score=None, confidence=round(0.5 * coverage, 4),
                         coverage=round(coverage, 4))
    words = {h: content_words(t) for h, t in answers.items()}
    sims: dict[str, list[float]] = {h: [] for h in answers}
    total: list[float] = []
    for a, b in itertools.combinations(answers, 2):
        s = jaccard(words[a], words[b])
        sims[a].append(s)
        sims[b].append(s)
        total.append(s)
    score = sum(total) / len(total)
    per_head = {h: round(sum(v) / len(v), 4) for h, v in sims.items()}
    dissenting = [h for h, s in per_head.items() if s < 0.5 * score and s < 0.5]
    return Agreement(score=round(score, 4), confidence=round(score * coverage, 4),
                     coverage=round(coverage, 4), per_head=per_head, dissenting=dissenting,
                     pairs=len(total))

"""How a debate measures consensus.

Every argument ends with a line stating the agent's position (`POSITION: <stance>`;
`VOTE:` and `STANCE:` are read the same). Positions are normalised (case, punctuation,
markdown emphasis and extra spaces dropped) and compared exactly. The score after a
round is the size of the largest group of agents whose latest positions agree, divided
by the number of agents in the debate: an agent that has not stated a position (it timed
out, failed, or left the line out) counts as dissent. A score at or over the debate's
`consensus_threshold` ends the debate.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_POSITION = re.compile(r"^[\s>*_#-]*(?:position|vote|stance)[\s*_]*[:=]\s*(.+?)\s*$",
                       re.IGNORECASE | re.MULTILINE)
_NOISE = re.compile(r"[^\w\s]+")


def normalise(position: str) -> str:
    """`"**Adopt Rust.**"` → `"adopt rust"`."""
    return " ".join(_NOISE.sub(" ", position.lower()).split())


def stated_position(text: str) -> str | None:
    """The position an argument states on its last `POSITION:` line, normalised; None
    when it states none."""
    found = _POSITION.findall(text)
    if not found:
        return None
    position = normalise(found[-1])
    return position or None


@dataclass(frozen=True)
class Consensus:
    score: float
    #: the position the largest group holds (None: nobody stated one)
    majority: str | None
    #: each agent's latest position (None: none stated yet)
    positions: dict[str, str | None]


def measure(agents: list[str], positions: dict[str, str | None]) -> Consensus:
    """The consensus among `agents` given each one's latest position."""
    latest = {agent: positions.get(agent) for agent in agents}
    counts = Counter(p for p in latest.values() if p is not None)
    if not counts or not agents:
        return Consensus(0.0, None, latest)
    majority, size = counts.most_common(1)[0]
    return Consensus(round(size / len(agents), 4), majority, latest)

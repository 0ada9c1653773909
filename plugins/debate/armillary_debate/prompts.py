"""What the agents are asked. Every debater's prompt ends with the position line the
consensus check reads (see `consensus`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from armillary import to_json

POSITION_INSTRUCTION = ('End your reply with one line of the form "POSITION: <your stance '
                        'in a few words>"; use the same words as another participant when '
                        'you agree with them.')

#: debate_rules keys the plugin reads itself; the rest are quoted to the agents
RESERVED_RULES = frozenset({"moderator", "synthesizer"})


@dataclass(frozen=True)
class Said:
    """One argument as the prompts quote it."""

    round: int
    phase: str
    agent: str
    text: str


def _header(config: dict[str, Any], agents: Sequence[str]) -> list[str]:
    lines = [f"Debate topic: {config['debate_topic']}",
             f"Problem statement: {config['problem_statement']}",
             f"Participants: {', '.join(agents)}"]
    rules = {k: v for k, v in config.get("debate_rules", {}).items() if k not in RESERVED_RULES}
    if rules:
        lines.append(f"Rules: {to_json(rules)}")
    return lines


def _quote(said: Sequence[Said]) -> list[str]:
    return [f"[round {s.round}, {s.phase}] {s.agent}: {s.text}" for s in said]


def argument(config: dict[str, Any], agents: Sequence[str], speaker: str, *, round: int,
             phase: str, quoted: Sequence[Said], quoted_as: str, task: str) -> str:
    """A debater's prompt: the debate, the arguments it answers, its task."""
    lines = _header(config, agents)
    lines.append(f"You are {speaker}. Round {round} of {config['max_rounds']}, {phase}.")
    if quoted:
        lines += ["", f"{quoted_as}:", *_quote(quoted)]
    lines += ["", task, POSITION_INSTRUCTION]
    return "\n".join(lines)


PHASE_TASKS = {
    "opening": "Give your opening statement: your position and your strongest reasons.",
    "rebuttal": "Rebut the other participants' arguments and defend or revise your position.",
    "closing": "Give your closing statement: your final position and why.",
    "reply": "Reply directly to these latest arguments.",
    "turn": "The moderator gives you the floor: answer the debate so far.",
}


def moderator(config: dict[str, Any], agents: Sequence[str], *, round: int, turn: int,
              quoted: Sequence[Said], spoken_this_round: Sequence[str]) -> str:
    lines = _header(config, agents)
    lines += [f"You moderate this debate. Round {round} of {config['max_rounds']}, turn "
              f"{turn} of {config['max_iterations_per_round']}.",
              f"Spoken this round: {', '.join(spoken_this_round) or 'nobody yet'}."]
    if quoted:
        lines += ["", "The debate so far:", *_quote(quoted)]
    lines += ["", 'Decide who speaks next. Answer with exactly one line: "NEXT: <participant>" '
              'to give a participant the floor, or "STOP" when the debate has run its course.']
    return "\n".join(lines)


def synthesis(config: dict[str, Any], agents: Sequence[str], *, quoted: Sequence[Said],
              reason: str, score: float, majority: str | None) -> str:
    lines = _header(config, agents)
    lines += [f"The debate ended ({reason}); consensus score {score:.2f}"
              + (f", majority position: {majority}." if majority else ".")]
    if quoted:
        lines += ["", "The debate:", *_quote(quoted)]
    lines += ["", "Write the synthesis: where the participants agree, where they still "
              "differ, and the resolution you recommend."]
    return "\n".join(lines)
